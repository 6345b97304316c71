package nackgen

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

const (
	mediaSSRC = 1111
	rtxSSRC   = 2222
)

// harness binds a Generator the way a peer connection does: an RTCP writer that records
// what it sends, a media stream and its RTX stream whose readers return the packets the
// test pushes.
type harness struct {
	t     *testing.T
	g     *Generator
	media chan []byte
	rtx   chan []byte
	mr    interceptor.RTPReader
	rr    interceptor.RTPReader

	mu    sync.Mutex
	nacks map[uint16]int // times each sequence number was asked for
}

func newHarness(t *testing.T, f Factory) *harness {
	return newHarnessRTX(t, f, rtxSSRC)
}

// newHarnessRTX binds the media stream naming announced as its RTX stream (0: none, as
// when pion learns the pair from header extensions).
func newHarnessRTX(t *testing.T, f Factory, announced uint32) *harness {
	t.Helper()
	i, err := f.NewInterceptor("")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, g: i.(*Generator), media: make(chan []byte, 1), rtx: make(chan []byte, 1), nacks: map[uint16]int{}}
	h.g.BindRTCPWriter(interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, _ interceptor.Attributes) (int, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, p := range pkts {
			n, ok := p.(*rtcp.TransportLayerNack)
			if !ok || n.MediaSSRC != mediaSSRC {
				t.Errorf("unexpected RTCP %T", p)
				continue
			}
			for _, pair := range n.Nacks {
				for _, s := range pair.PacketList() {
					h.nacks[s]++
				}
			}
		}
		return 0, nil
	}))
	feed := func(ch chan []byte) interceptor.RTPReader {
		return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
			return copy(b, <-ch), a, nil
		})
	}
	info := &interceptor.StreamInfo{SSRC: mediaSSRC, SSRCRetransmission: announced, MimeType: "video/VP8",
		RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}}}
	h.mr = h.g.BindRemoteStream(info, feed(h.media))
	h.rr = h.g.BindRemoteStream(&interceptor.StreamInfo{SSRC: rtxSSRC, MimeType: "video/rtx"}, feed(h.rtx))
	t.Cleanup(func() { _ = h.g.Close() })
	return h
}

func packet(t *testing.T, ssrc uint32, seq uint16, payload []byte) []byte {
	t.Helper()
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, SSRC: ssrc}, Payload: payload}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (h *harness) sendMedia(seq uint16) {
	h.media <- packet(h.t, mediaSSRC, seq, []byte{1, 2, 3})
	buf := make([]byte, 1500)
	if _, _, err := h.mr.Read(buf, nil); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) sendRTX(rtxSeq, osn uint16) {
	p := make([]byte, 5)
	binary.BigEndian.PutUint16(p, osn)
	h.rtx <- packet(h.t, rtxSSRC, rtxSeq, p)
	buf := make([]byte, 1500)
	if _, _, err := h.rr.Read(buf, nil); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) asked(seq uint16) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nacks[seq]
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A gap is asked for; the packet repaired over RTX is not asked for again, however long
// the test waits (pion's generator asks for it every interval until it leaves its window).
func TestRepairOverRTXEndsTheNACKs(t *testing.T) {
	for _, c := range []struct {
		name      string
		announced uint32
	}{{"announced", rtxSSRC}, {"learnt from the repair", 0}} {
		t.Run(c.name, func(t *testing.T) { testRepairEndsNACKs(t, c.announced) })
	}
}

func testRepairEndsNACKs(t *testing.T, announced uint32) {
	h := newHarnessRTX(t, Factory{Interval: 5 * time.Millisecond}, announced)
	h.sendMedia(100)
	h.sendMedia(102) // 101 lost
	waitFor(t, "a NACK for 101", func() bool { return h.asked(101) > 0 })
	h.sendRTX(7, 101)
	after := h.asked(101)
	for i := range 40 { // 40 intervals and more, with media flowing
		h.sendMedia(103 + uint16(i))
		time.Sleep(5 * time.Millisecond)
	}
	if got := h.asked(101); got != after {
		t.Fatalf("101 asked for %d times after its repair (%d before)", got-after, after)
	}
	if h.asked(100) != 0 || h.asked(102) != 0 {
		t.Fatal("asked for packets that arrived")
	}
}

// A packet that never comes is asked for at most MaxNACKs times, spaced by the measured
// round trip, then given up.
func TestGivesUpAfterMaxNACKs(t *testing.T) {
	h := newHarness(t, Factory{Interval: 2 * time.Millisecond, MaxNACKs: 3})
	h.sendMedia(10)
	h.sendMedia(12)
	waitFor(t, "three NACKs for 11", func() bool { return h.asked(11) == 3 })
	time.Sleep(3 * maxRetry / 2)
	if n := h.asked(11); n != 3 {
		t.Fatalf("11 asked for %d times, want 3", n)
	}
}

// A reordered packet that arrives before the first NACK is never asked for; a late
// original (not over RTX) ends the NACKs just as a repair does.
func TestReorderedPacketsAreNotAskedFor(t *testing.T) {
	h := newHarness(t, Factory{Interval: time.Hour}) // the loop never runs on its own
	h.sendMedia(1)
	h.sendMedia(3)
	h.sendMedia(2)
	s := h.g.streams[mediaSSRC]
	if seqs := s.due(time.Now().Add(time.Minute), time.Hour, 8, DefaultWindow, nil); len(seqs) != 0 {
		t.Fatalf("asked for %v after the reordered packet arrived", seqs)
	}
}

// The retry spacing follows the round trip measured from NACK to repair.
func TestRetryFollowsMeasuredRTT(t *testing.T) {
	s := &stream{rtt: initialRTT, started: true, highest: 0}
	t0 := time.Now()
	for i := range 50 {
		base := uint16(i * 2)
		s.received(base+2, false, DefaultWindow, t0) // base+1 missing
		if seqs := s.due(t0.Add(time.Second), 0, 8, DefaultWindow, nil); len(seqs) != 1 || seqs[0] != base+1 {
			t.Fatalf("round %d: due %v, want [%d]", i, seqs, base+1)
		}
		s.received(base+1, true, DefaultWindow, t0.Add(time.Second+400*time.Millisecond))
		t0 = t0.Add(2 * time.Second)
	}
	if s.rtt < 350*time.Millisecond || s.rtt > 450*time.Millisecond {
		t.Fatalf("smoothed RTT %v after fifty 400 ms repairs", s.rtt)
	}
	if r := s.retryAfter(); r < 400*time.Millisecond {
		t.Fatalf("retry after %v with a 400 ms round trip: would ask again before the repair can arrive", r)
	}
}

// A jump far beyond the window (a publisher restart) asks for nothing; a long outage
// remembers at most maxMissing packets.
func TestJumpsAreBounded(t *testing.T) {
	s := &stream{rtt: initialRTT}
	now := time.Now()
	s.received(0, false, DefaultWindow, now)
	s.received(20000, false, DefaultWindow, now)
	if len(s.missing) != 0 {
		t.Fatalf("%d missing after a restart-sized jump", len(s.missing))
	}
	s.received(20000+400, false, DefaultWindow, now)
	if len(s.missing) != maxMissing || s.missing[len(s.missing)-1].seq != 20399 {
		t.Fatalf("%d missing (last %d) after a 399-packet outage, want the newest %d", len(s.missing), s.missing[len(s.missing)-1].seq, maxMissing)
	}
}

func TestOriginalSeq(t *testing.T) {
	for _, c := range []struct {
		name string
		pkt  rtp.Packet
		want uint16
		ok   bool
	}{
		{"plain", rtp.Packet{Header: rtp.Header{Version: 2}, Payload: []byte{0x12, 0x34, 9}}, 0x1234, true},
		{"csrc and extension", withExtension(t, rtp.Packet{Header: rtp.Header{Version: 2, CSRC: []uint32{5, 6}}, Payload: []byte{0xab, 0xcd}}), 0xabcd, true},
		{"padding only", rtp.Packet{Header: rtp.Header{Version: 2, Padding: true, PaddingSize: 4}}, 0, false},
		{"no payload", rtp.Packet{Header: rtp.Header{Version: 2}}, 0, false},
	} {
		b, err := c.pkt.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, ok := originalSeq(b)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: got %#x %v, want %#x %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

func withExtension(t *testing.T, p rtp.Packet) rtp.Packet {
	t.Helper()
	if err := p.SetExtension(3, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	return p
}

// FuzzOriginalSeq: RTX packets come from the network; no input may panic, and what is
// read lies inside the packet.
func FuzzOriginalSeq(f *testing.F) {
	f.Add([]byte{0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x12, 0x34})
	f.Add([]byte{0xb0, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe, 0xde, 0xff, 0xff, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, ok := originalSeq(b); ok && len(b) < 14 {
			t.Fatalf("a sequence number from %d bytes", len(b))
		}
	})
}

// A connection that receives no video never starts the generator's loop (a subscriber
// connection, an audio-only publisher): with a ticker each, a big meeting's idle
// connections woke the bridge tens of thousands of times a second. The loop starts with
// the first stream that negotiated NACK, whichever of it and the writer comes first.
func TestLoopStartsWithTheFirstNACKStream(t *testing.T) {
	for _, writerFirst := range []bool{true, false} {
		i, err := Factory{}.NewInterceptor("")
		if err != nil {
			t.Fatal(err)
		}
		g := i.(*Generator)
		started := func() bool {
			g.mu.Lock()
			defer g.mu.Unlock()
			return g.started
		}
		w := interceptor.RTCPWriterFunc(func([]rtcp.Packet, interceptor.Attributes) (int, error) { return 0, nil })
		none := interceptor.RTPReaderFunc(func([]byte, interceptor.Attributes) (int, interceptor.Attributes, error) {
			return 0, nil, nil
		})
		if writerFirst {
			g.BindRTCPWriter(w)
		}
		g.BindRemoteStream(&interceptor.StreamInfo{SSRC: 1, MimeType: "audio/opus"}, none)
		g.BindRemoteStream(&interceptor.StreamInfo{SSRC: 2, MimeType: "video/rtx"}, none)
		if !writerFirst {
			g.BindRTCPWriter(w)
		}
		if started() {
			t.Fatalf("writer first %v: the loop runs with no stream to watch", writerFirst)
		}
		g.BindRemoteStream(&interceptor.StreamInfo{SSRC: mediaSSRC, MimeType: "video/VP8",
			RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}}}, none)
		if !started() {
			t.Fatalf("writer first %v: a NACK stream is bound and the loop has not started", writerFirst)
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
