package client

import (
	"math"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for v := int64(1); v <= 100000; v++ {
		h.Record(v * 1000) // 1 µs … 100 ms
	}
	for _, c := range []struct {
		q    float64
		want float64
	}{{0.5, 50e6}, {0.95, 95e6}, {0.99, 99e6}} {
		got := float64(h.Quantile(c.q))
		if math.Abs(got-c.want)/c.want > 0.035 {
			t.Errorf("q%.2f = %.0f, want %.0f ±3.5%%", c.q, got, c.want)
		}
	}
	if h.Count() != 100000 || h.Max() != 100e6 {
		t.Errorf("count %d max %d", h.Count(), h.Max())
	}
	before := h
	for i := 0; i < 10; i++ {
		h.Record(7)
	}
	h.Sub(&before)
	if h.Count() != 10 || h.Quantile(0.5) != 7 {
		t.Errorf("after Sub: count %d median %d, want 10 and 7", h.Count(), h.Quantile(0.5))
	}
	var m Histogram
	m.Merge(&before)
	m.Merge(&h)
	if m.Count() != 100010 {
		t.Errorf("merged count %d", m.Count())
	}
	if (&Histogram{}).Quantile(0.5) != 0 {
		t.Error("empty histogram quantile should be 0")
	}
}

func TestHistogramIndexMonotonic(t *testing.T) {
	prev := -1
	for v := int64(0); v < 1<<40; v = v*17/16 + 1 {
		i := histIndex(v)
		if i < prev {
			t.Fatalf("index of %d is %d, below %d", v, i, prev)
		}
		if i < histBuckets-1 {
			if mid := histValue(i); math.Abs(float64(mid-v)) > float64(v)/30+1 {
				t.Fatalf("bucket value %d for %d is off by more than 3.3%%", mid, v)
			}
		}
		prev = i
	}
}

func TestProbeRoundTrip(t *testing.T) {
	b := make([]byte, 40)
	p := Probe{SentAt: 1234567890123, Frame: 77, Index: 2, Count: 5}
	if !p.Put(b[VideoProbeOffset:]) {
		t.Fatal("put failed")
	}
	got, ok := probeAt("video", b)
	if !ok || got != p {
		t.Fatalf("got %+v %v, want %+v", got, ok, p)
	}
	if _, ok := probeAt("audio", b); ok {
		t.Fatal("found a probe at the audio offset")
	}
	if _, ok := ParseProbe(b[:10]); ok {
		t.Fatal("short buffer parsed")
	}
}

// feed sends packets with the given sequence numbers, 20 ms apart in RTP time and in
// arrival time (plus the given extra arrival delay per packet).
func feed(s *Stream, seqs []uint16, extra func(i int) time.Duration) {
	t0 := time.Unix(1000, 0)
	for i, sq := range seqs {
		hdr := rtp.Header{SequenceNumber: sq, Timestamp: uint32(sq) * 960}
		at := t0.Add(time.Duration(sq) * 20 * time.Millisecond)
		if extra != nil {
			at = at.Add(extra(i))
		}
		payload := make([]byte, 40)
		Probe{SentAt: at.Add(-3 * time.Millisecond).UnixNano(), Frame: uint32(sq)}.Put(payload[AudioProbeOffset:])
		s.rx.observe(&hdr, payload, s.Kind, at)
	}
}

func TestStreamLossDuplicatesReorderWrap(t *testing.T) {
	s := newStream("s", "t", "audio", "audio/opus", 48000)
	// Start near the wrap, lose 65534 and 3, duplicate 1, reorder 5/4.
	feed(s, []uint16{65530, 65531, 65532, 65533, 65535, 0, 1, 1, 2, 5, 4, 6}, nil)
	st := s.Stats()
	if st.Expected != 13 || st.Received != 11 || st.Lost != 2 || st.Duplicates != 1 {
		t.Fatalf("stats %+v: want expected 13, received 11, lost 2, dups 1", st)
	}
	if st.Probed != 11 {
		t.Errorf("probed %d, want 11", st.Probed)
	}
	lat := s.Latency()
	if q := time.Duration(lat.Quantile(0.5)); q < 2900*time.Microsecond || q > 3100*time.Microsecond {
		t.Errorf("median latency %v, want 3 ms", q)
	}
}

func TestStreamJitter(t *testing.T) {
	s := newStream("s", "t", "audio", "audio/opus", 48000)
	seqs := make([]uint16, 500)
	for i := range seqs {
		seqs[i] = uint16(i)
	}
	feed(s, seqs, nil)
	if j := s.Stats().JitterMs; j > 0.01 {
		t.Fatalf("jitter %.3f ms for perfectly paced packets", j)
	}
	s = newStream("s", "t", "audio", "audio/opus", 48000)
	// Alternate 0 and 4 ms extra delay: |D| = 4 ms every packet, so J → 4 ms.
	feed(s, seqs, func(i int) time.Duration { return time.Duration(i%2) * 4 * time.Millisecond })
	if j := s.Stats().JitterMs; math.Abs(j-4) > 0.2 {
		t.Fatalf("jitter %.3f ms, want about 4", j)
	}
}

func TestStreamFramesAndResync(t *testing.T) {
	s := newStream("s", "t", "video", "video/VP8", 90000)
	now := time.Now()
	seq := uint16(100)
	for f := uint32(0); f < 10; f++ {
		for i := uint8(0); i < 3; i++ {
			seq++
			if f == 4 && i == 1 {
				continue // frame 4 incomplete
			}
			payload := make([]byte, 100)
			Probe{SentAt: now.UnixNano(), Frame: f, Index: i, Count: 3}.Put(payload[VideoProbeOffset:])
			s.rx.observe(&rtp.Header{SequenceNumber: seq, Timestamp: f * 6000}, payload, "video", now)
		}
	}
	st := s.Stats()
	if st.Frames != 9 || st.FramesExpected != 10 || st.Lost != 1 {
		t.Fatalf("frames %d/%d lost %d, want 9/10 and 1", st.Frames, st.FramesExpected, st.Lost)
	}
	// A jump of 20,000 is a restart, not 20,000 lost packets.
	s.rx.observe(&rtp.Header{SequenceNumber: seq + 20000}, nil, "video", now)
	s.rx.observe(&rtp.Header{SequenceNumber: seq + 20001}, nil, "video", now)
	st = s.Stats()
	if st.Resyncs != 1 || st.Lost != 1 || st.Expected != 32 {
		t.Fatalf("after restart %+v: want 1 resync, 1 lost, 32 expected", st)
	}
}

// TestStreamLastSent: LastSent is the newest send time among the packets received, so a
// packet sent long ago and read late (a queue drained after a stall) moves Last, not it.
func TestStreamLastSent(t *testing.T) {
	s := newStream("s", "t", "audio", "audio/opus", 48000)
	t0 := time.Unix(1000, 0)
	for i, sq := range []uint16{0, 1, 2, 3, 4, 5, 6, 7, 9, 8} {
		sent := t0.Add(time.Duration(sq) * 20 * time.Millisecond)
		at := sent.Add(3 * time.Millisecond)
		if i == 9 {
			at = at.Add(time.Second) // seq 8, sent before 9, read a second late
		}
		payload := make([]byte, 40)
		Probe{SentAt: sent.UnixNano(), Frame: uint32(sq)}.Put(payload[AudioProbeOffset:])
		s.rx.observe(&rtp.Header{SequenceNumber: sq, Timestamp: uint32(sq) * 960}, payload, s.Kind, at)
	}
	st := s.Stats()
	if want := t0.Add(9 * 20 * time.Millisecond); !st.LastSent.Equal(want) {
		t.Errorf("last sent %v, want seq 9's send time %v", st.LastSent.Sub(t0), want.Sub(t0))
	}
	if st.Last.Sub(st.LastSent) < 900*time.Millisecond {
		t.Errorf("last arrival %v, last sent %v: want the late packet's arrival in Last only", st.Last.Sub(t0), st.LastSent.Sub(t0))
	}
}
