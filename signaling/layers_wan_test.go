package signaling_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/wan"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/signaling"
)

// layerWindow is what a watcher received of a simulcast camera over a window: packets
// per layer (low, middle, top).
type layerWindow [3]int64

// main is the layer most packets came at, -1 if none came.
func (w layerWindow) main() int {
	best, n := -1, int64(0)
	for i, p := range w {
		if p > n {
			best, n = i, p
		}
	}
	return best
}

func (w layerWindow) total() int64 { return w[0] + w[1] + w[2] }

// watchLayers counts what c receives of stream over span, by layer.
func watchLayers(c *client.Client, stream string, span time.Duration) layerWindow {
	var before [3]int64
	if s := c.Stream(stream, "video"); s != nil {
		before = s.LayerPackets()
	}
	time.Sleep(span)
	var w layerWindow
	if s := c.Stream(stream, "video"); s != nil {
		after := s.LayerPackets()
		for i := range w {
			w[i] = after[i] - before[i]
		}
	}
	return w
}

// relayTo is central's relay link towards bridge id, as central reports it.
func relayTo(sig *signaling.Server, id string) (protocol.RelayStat, bool) {
	for _, st := range sig.RelayStats()["local"] {
		if string(st.Peer.Relay.Bridge) == id {
			return st, true
		}
	}
	return protocol.RelayStat{}, false
}

// TestShapedRelayLinkBetweenBridgeProcesses is issue 10's second test: a province bridge
// (a `cau bridge` process) runs in a network namespace whose downlink, the relay link from
// central, the test shapes with tbf. The chair publishes a three-layer camera at central;
// a watcher at central (before the link) and one at the province (beyond it) watch it.
// Shaped, the link carries the low layer and the province keeps receiving; central keeps
// the top layer; lifted, the province gets the top layer back.
func TestShapedRelayLinkBetweenBridgeProcesses(t *testing.T) {
	sh := wan.NewShaped(t, "10.209.0")
	ts, _, _ := centralAndProvinceBridge(t, sh.HostIP, func(signal string) []string {
		return sh.Exec(buildCau(t), "bridge", "--site", "prov", "--id", "br-prov",
			"--signal", signal, "--udp-port", "0", "--tcp-port", "-1", "--dev", "--log-level", wanLogLevel())
	})
	sig := ts.sig
	chair := ts.join(t, "shaped", "central", "chair")
	// About 240, 480 and 960 kbit/s of payload: the low layer fits the shaped link, the
	// middle one does not.
	if _, err := chair.PublishWith(context.Background(), client.PublishOptions{Simulcast: true, FPS: 25,
		PacketsPerFrame: 8, PayloadBytes: 600}); err != nil {
		t.Fatal(err)
	}
	stream := chair.Self.Streams[protocol.SourceCamera]
	near := ts.join(t, "shaped", "central", "watcher-central")
	// The province's watcher reaches its bridge in the namespace through the veth, so not
	// over loopback alone; what it receives crosses the namespace's uplink, not shaped.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	far, err := client.Dial(ctx, ts.ws, ts.token(t, "shaped", "prov", "watcher-prov"), client.Options{Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(far.Close)

	onTop := func(c *client.Client, name string) func() string {
		return func() string {
			if w := watchLayers(c, stream, time.Second); w.main() != 2 {
				pkts := int64(-1)
				if s := c.Stream(stream, "video"); s != nil {
					pkts = s.Packets.Load()
				}
				return fmt.Sprintf("%s receives %v (low, middle, top packets in 1 s; %d video packets in all), not mainly the top layer",
					name, w, pkts)
			}
			return ""
		}
	}
	joined := time.Now()
	eventually(t, 60*time.Second, onTop(far, "the province"))
	eventually(t, 30*time.Second, onTop(near, "central"))
	t.Logf("both watchers on the top layer %v after joining", time.Since(joined).Round(100*time.Millisecond))
	relayTo(sig, "br-prov") // the link's bit rate is over the time since the last call
	time.Sleep(2 * time.Second)
	before, _ := relayTo(sig, "br-prov")

	const rate = 400
	sh.SetRate(t, rate)
	shapedAt := time.Now()
	eventually(t, 30*time.Second, func() string {
		if w := watchLayers(far, stream, time.Second); w.main() != 0 {
			return fmt.Sprintf("the province receives %v, not mainly the low layer", w)
		}
		return ""
	})
	dropped := time.Since(shapedAt)
	time.Sleep(2 * time.Second) // the shaper's queue drains
	relayTo(sig, "br-prov")
	wfar := watchLayers(far, stream, 4*time.Second)
	during, _ := relayTo(sig, "br-prov")
	wnear := watchLayers(near, stream, 2*time.Second)
	t.Logf("link shaped to %d kbit/s: the province on the low layer after %v; over 4 s it received %v packets (low, middle, top); central %v in 2 s",
		rate, dropped.Round(10*time.Millisecond), wfar, wnear)
	t.Logf("relay link central→province: before %.0f kbit/s, estimate %.0f, layers %v; shaped %.0f kbit/s, estimate %.0f, layers %v",
		before.BitrateBps/1e3, before.EstimateBps, before.Layers, during.BitrateBps/1e3, during.EstimateBps, during.Layers)
	if wfar.total() < 4*25 {
		t.Errorf("the province received %d video packets in 4 s behind the shaped link: it stopped", wfar.total())
	}
	if wfar.main() != 0 || wfar[2] > 0 {
		t.Errorf("the province received %v behind the shaped link, want the low layer", wfar)
	}
	if wnear.main() != 2 {
		t.Errorf("central received %v while the province's link was shaped, want the top layer", wnear)
	}

	sh.SetRate(t, 0)
	liftedAt := time.Now()
	eventually(t, 60*time.Second, onTop(far, "the province"))
	relayTo(sig, "br-prov")
	time.Sleep(2 * time.Second)
	after, _ := relayTo(sig, "br-prov")
	t.Logf("limit lifted: the province on the top layer again after %v; relay link %.0f kbit/s, estimate %.0f",
		time.Since(liftedAt).Round(100*time.Millisecond), after.BitrateBps/1e3, after.EstimateBps)
}
