package sfu

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

func TestParsePortRange(t *testing.T) {
	for _, c := range []struct {
		in   string
		want PortRange
		ok   bool
	}{
		{"", PortRange{}, true},
		{"40000-40999", PortRange{40000, 40999}, true},
		{" 5000 - 5000 ", PortRange{5000, 5000}, true},
		{"40000", PortRange{}, false},
		{"40999-40000", PortRange{}, false},
		{"0-10", PortRange{}, false},
		{"1-65536", PortRange{}, false},
		{"a-b", PortRange{}, false},
		{"-", PortRange{}, false},
	} {
		got, err := ParsePortRange(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParsePortRange(%q) = %v, %v; want %v, ok %v", c.in, got, err, c.want, c.ok)
		}
		if c.ok && got.String() != "" {
			if again, err := ParsePortRange(got.String()); err != nil || again != got {
				t.Errorf("%v does not read back: %v, %v", got, again, err)
			}
		}
	}
}

// TestRelayLinksOwnSockets joins two bridges with two relay links (two meetings' links
// over one bridge pair) that both carry a camera from a to b. Each link's connection sits
// on sockets of its own on both bridges: on a from its RelayPorts, on b from any free port,
// never the ICE UDP port the endpoints use, and no two connections share a local port.
func TestRelayLinksOwnSockets(t *testing.T) {
	lo := uint16(20000 + 100*rand.IntN(100)) // below Linux's ephemeral range
	ports := PortRange{Min: lo, Max: lo + 99}
	a, err := New(Config{ICEUDPPort: 0, ICETCPPort: -1, IncludeLoopback: true, RelayPorts: ports, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	b := newTestBridge(t)
	r := newSimRoom(t, a)
	up := r.track()

	type link struct {
		ra, rb  *Peer
		arrived chan struct{}
	}
	links := make([]link, 2)
	for i := range links {
		l := &links[i]
		l.arrived = make(chan struct{}, 8)
		l.ra, l.rb = relayLink(t, a, b, func(up *UpTrack) { l.arrived <- struct{}{} })
		if _, err := l.ra.Subscribe(up, up.ID(), up.StreamID()); err != nil {
			t.Fatal(err)
		}
	}
	for i, l := range links {
		select {
		case <-l.arrived:
		case <-time.After(20 * time.Second):
			t.Fatalf("the camera did not arrive over relay link %d", i)
		}
	}

	muxPorts := func(br *Bridge) map[int]bool {
		out := map[int]bool{}
		for _, ad := range br.udpMux.GetListenAddresses() {
			out[ad.(*net.UDPAddr).Port] = true
		}
		return out
	}
	aMux, bMux := muxPorts(a), muxPorts(b)
	seen := map[string]int{}
	for i, l := range links {
		for _, end := range []struct {
			name string
			pc   *webrtc.PeerConnection
			mux  map[int]bool
			in   PortRange
		}{{"a", l.ra.sub, aMux, ports}, {"b", l.rb.pub, bMux, PortRange{}}} {
			var pair *webrtc.ICECandidatePair
			eventually(t, 5*time.Second, func() string {
				pair, err = end.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
				if err != nil || pair == nil {
					return fmt.Sprintf("link %d on %s: no selected pair (%v)", i, end.name, err)
				}
				return ""
			})
			port := int(pair.Local.Port)
			switch {
			case end.mux[port]:
				t.Errorf("link %d on %s uses the ICE UDP port %d", i, end.name, port)
			case end.in != (PortRange{}) && (port < int(end.in.Min) || port > int(end.in.Max)):
				t.Errorf("link %d on %s uses port %d, outside its relay ports %v", i, end.name, port, end.in)
			}
			key := fmt.Sprintf("%s %s:%d", end.name, pair.Local.Address, port)
			if j, dup := seen[key]; dup {
				t.Errorf("links %d and %d share the local socket %s", j, i, key)
			}
			seen[key] = i
		}
	}
}
