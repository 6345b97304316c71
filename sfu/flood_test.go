package sfu

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cau-project/cau/internal/testutil"
)

// stunRequest builds a STUN binding request (RFC 5389) carrying username (none if
// empty) and, if integrity, a MESSAGE-INTEGRITY that cannot verify.
func stunRequest(username string, integrity bool) []byte {
	var attrs []byte
	attr := func(typ uint16, v []byte) {
		h := make([]byte, 4, 4+len(v)+3)
		binary.BigEndian.PutUint16(h, typ)
		binary.BigEndian.PutUint16(h[2:], uint16(len(v)))
		h = append(h, v...)
		for len(h)%4 != 0 {
			h = append(h, 0)
		}
		attrs = append(attrs, h...)
	}
	if username != "" {
		attr(0x0006, []byte(username)) // USERNAME
	}
	if integrity {
		mac := make([]byte, 20)
		_, _ = rand.Read(mac)
		attr(0x0008, mac) // MESSAGE-INTEGRITY
	}
	m := make([]byte, 20, 20+len(attrs))
	binary.BigEndian.PutUint16(m, 0x0001) // binding request
	binary.BigEndian.PutUint16(m[2:], uint16(len(attrs)))
	binary.BigEndian.PutUint32(m[4:], 0x2112A442)
	_, _ = rand.Read(m[8:20])
	return append(m, attrs...)
}

var ufragLine = regexp.MustCompile(`a=ice-ufrag:(\S+)`)

// TestFloodAtICEPort (issue 12, finding 9): strangers' traffic at the bridge's ICE port
// (garbage UDP, STUN with no username, STUN naming a live peer's ufrag with credentials
// that cannot verify, DTLS-looking junk) is dropped at a bounded cost: the log grows by a
// bounded number of lines however long the flood (it used to grow one warning per
// packet), the rest is counted in cau_bridge_log_lines_suppressed_total, and the media
// of a live meeting on the same port keeps arriving: the subscriber receives what the
// bridge received from the publisher during the flood.
func TestFloodAtICEPort(t *testing.T) {
	logs := &testutil.LockedBuffer{}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{ICEUDPPort: 0, ICETCPPort: -1, IncludeLoopback: true, Metrics: m,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	r := &room{}
	pub := r.join(t, b, "pub")
	sub := r.join(t, b, "sub")
	pub.publish()
	sub.waitPackets(t, 15*time.Second, "stream-pub", webrtc.RTPCodecTypeAudio, 20, "the subscriber has not received 20 audio packets")
	var target netip.AddrPort
	for _, a := range b.MediaAddrs() {
		if a.Addr().IsLoopback() {
			target = a
		}
	}
	if !target.IsValid() {
		t.Fatalf("no loopback media address in %v", b.MediaAddrs())
	}
	um := ufragLine.FindStringSubmatch(pub.pub.RemoteDescription().SDP)
	if um == nil {
		t.Fatal("no ice-ufrag in the bridge's answer")
	}
	var upAudio *UpTrack
	for _, u := range pub.peer.UpTracks() {
		if u.Kind() == webrtc.RTPCodecTypeAudio {
			upAudio = u
		}
	}
	if upAudio == nil {
		t.Fatal("the bridge has no audio track from the publisher")
	}

	junk := []func() []byte{
		func() []byte { p := make([]byte, 200); _, _ = rand.Read(p); p[0] = 0x80 | p[0]&0x3f; return p }, // not STUN
		func() []byte { return stunRequest("", false) },                                                  // no username
		func() []byte { return stunRequest(um[1]+":intruder", true) },                                    // a live ufrag, bad credentials
		func() []byte { p := make([]byte, 120); _, _ = rand.Read(p); p[0] = 22; return p },               // DTLS handshake junk
	}
	var socks []*net.UDPConn
	for range junk {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(target))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		socks = append(socks, c)
	}
	linesBefore := strings.Count(logs.String(), "\n")
	upBefore := upAudio.PacketsReceived()
	rxBefore := sub.got("stream-pub", webrtc.RTPCodecTypeAudio).packets.Load()
	const perKind = 5000
	cpuBefore := processCPU()
	for i := range perKind {
		for k, mk := range junk {
			_, _ = socks[k].Write(mk())
		}
		if i%8 == 7 {
			time.Sleep(time.Millisecond) // ~20k packets/s: a flood, not a bandwidth test
		}
	}
	// The last junk is handled before the counts are taken: one more of the slowest kind
	// (a live ufrag's) is logged or counted once it is through.
	suppressed := func() float64 { return testutil.Counter(t, reg, "cau_bridge_log_lines_suppressed_total") }
	eventually(t, 10*time.Second, func() string {
		if s := suppressed(); s < perKind {
			return fmt.Sprintf("%v log lines suppressed, want at least %d (the warnings of one kind of junk)", s, perKind)
		}
		return ""
	})
	cpu := processCPU() - cpuBefore
	upDelta := upAudio.PacketsReceived() - upBefore
	rxDelta := uint64(sub.got("stream-pub", webrtc.RTPCodecTypeAudio).packets.Load() - rxBefore)
	lines := strings.Count(logs.String(), "\n") - linesBefore
	// The process's CPU over the flood (the flooder's sends and the meeting's media
	// included): an upper bound on what a junk packet costs the bridge.
	t.Logf("flood: %d packets; log lines %d, suppressed %.0f; publisher audio at the bridge %d, at the subscriber %d; "+
		"process CPU %v, at most %.1f µs a junk packet",
		perKind*len(junk), lines, suppressed(), upDelta, rxDelta, cpu, float64(cpu.Microseconds())/float64(perKind*len(junk)))
	if lines > 80 {
		t.Errorf("the flood logged %d lines, want at most 80:\n%s", lines, logs.Tail(2000))
	}
	if upDelta < 25 {
		t.Fatalf("the bridge received %d audio packets from the publisher during the flood, want at least 25", upDelta)
	}
	if rxDelta+max(5, upDelta/20) < upDelta {
		t.Errorf("the subscriber received %d of the %d audio packets the bridge received during the flood", rxDelta, upDelta)
	}
	audio := sub.got("stream-pub", webrtc.RTPCodecTypeAudio)
	after := audio.packets.Load()
	eventually(t, 10*time.Second, func() string {
		if audio.packets.Load() < after+25 {
			return "the subscriber stopped receiving after the flood"
		}
		return ""
	})
}

// processCPU is the process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
