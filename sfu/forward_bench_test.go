package sfu

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// discardWriter stands in for pion's SRTP writer so BenchmarkForward measures the bridge's
// own per-packet work: parse, keyframe check, fan-out, per-subscriber rewrite.
type discardWriter struct{ n int }

func (w *discardWriter) WriteRTP(h *rtp.Header, p []byte) (int, error) {
	w.n++
	return h.MarshalSize() + len(p), nil
}
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

func benchUpTrack(n int) (*UpTrack, []byte) {
	owner := &Peer{bridge: &Bridge{}}
	up := &UpTrack{kind: webrtc.RTPCodecTypeVideo, codecK: codecVP8, owner: owner, done: make(chan struct{}),
		log: slog.New(slog.DiscardHandler)}
	empty := []*DownTrack{}
	up.downs.Store(&empty)
	up.taps.Store(&[]*Tap{})
	up.lastKeyframeReq.Store(time.Now().Add(time.Hour).UnixNano()) // no PLI in the loop
	for i := 0; i < n; i++ {
		sub := &Peer{}
		sub.subConnected.Store(true)
		d := newDownTrack(up, sub, "v", "s")
		d.binding.Store(&binding{ssrc: uint32(1000 + i), pt: 96, writer: &discardWriter{}})
		next := append(*up.downs.Load(), d)
		up.downs.Store(&next)
	}
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 1, Timestamp: 1, SSRC: 42,
		Extension: true, ExtensionProfile: 0xBEDE}, Payload: make([]byte, 1100)}
	_ = pkt.SetExtension(1, []byte{0x30})
	pkt.Payload[0], pkt.Payload[1] = 0x10, 0x00 // a VP8 keyframe start, so every subscriber starts at once
	raw, err := pkt.Marshal()
	if err != nil {
		panic(err)
	}
	return up, raw
}

// BenchmarkForward is the cost of forwarding one RTP packet to N subscribers, excluding
// encryption and the socket. Target: 0 allocs/op.
func BenchmarkForward(b *testing.B) {
	for _, n := range []int{1, 10, 100, 300} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			up, raw := benchUpTrack(n)
			benchForwarding(b, up, raw, n)
		})
	}
}

// benchForwarding forwards raw (a keyframe start) through up to its n subscribers once to
// start them, then b.N times, its sequence number advanced each time.
func benchForwarding(b *testing.B, up *UpTrack, raw []byte, n int) {
	defer func() { up.fan.stop() }() // fan is created on the first packet, after this line
	var hdr rtp.Header
	var pending pendingCounts
	up.forward(raw, &hdr, &pending) // start every subscriber
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		raw[2], raw[3] = byte(i>>8), byte(i) // next sequence number
		up.forward(raw, &hdr, &pending)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/subscriber")
}

// BenchmarkForwardPion forwards through real connections over loopback: a publisher
// sends to the bridge, which forwards to n subscribers (rewrite, pion's interceptors,
// SRTP, the ICE mux, the batched UDP send). Packets are paced like BenchmarkFloor's
// bursts (floorBursts a second, 1,150-byte payloads), so it reads against the floor of
// the same run: cpu-µs/pkt is the whole process's CPU per forwarded packet: the bridge
// and its egress flushers, the publisher's send and the bridge's receive (once per
// burst: 1/n of a packet each), and the subscribers' whole receive path (pion's, about
// what the bridge's send costs). So it is an upper bound of the bridge's own cost, read
// as a ratio between builds in the same run, not as the bridge's figure.
// CAU_BENCH_PION="50,150" sets the subscriber counts.
func BenchmarkForwardPion(b *testing.B) {
	for _, n := range pionFanouts() {
		// The room is built once per fan-out: the inner benchmark's rounds (N=1, then
		// the real one) reuse it.
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			feed := pionRoom(b, n, true)
			b.Run("paced", func(b *testing.B) { benchForwardPion(b, feed, n) })
		})
	}
}

func benchForwardPion(b *testing.B, feed *pionFeed, n int) {
	interval := time.Second / floorBursts
	runtime.GC() // the room's setup garbage is not the forwarding's
	b.ReportAllocs()
	b.ResetTimer()
	next := time.Now()
	sent0 := feed.forwarded()
	cpu0 := processCPU()
	for i := 0; i < b.N; i++ {
		feed.send(false)
		next = next.Add(interval)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		} else {
			next = time.Now()
		}
	}
	cpu := processCPU() - cpu0
	time.Sleep(50 * time.Millisecond) // the last packets through the bridge
	sent := feed.forwarded() - sent0
	b.StopTimer()
	if sent == 0 {
		b.Fatalf("none of %d packets forwarded", b.N*n)
	}
	// A starved box makes the bridge skip frames (overload): the CPU is per packet sent,
	// and %forwarded says how far the run is from the shape the floor measures (on a
	// box loaded 20 deep, 3–10% of the packets were forwarded: no figure to read).
	b.ReportMetric(float64(cpu.Microseconds())/float64(sent), "cpu-µs/pkt")
	b.ReportMetric(100*float64(sent)/float64(b.N*n), "%forwarded")
}

// forwarded is the packets the bridge has sent the track's subscribers so far.
func (f *pionFeed) forwarded() uint64 {
	var n uint64
	for _, d := range *f.up.downs.Load() {
		n += d.PacketsSent()
	}
	return n
}

// pionFanouts are BenchmarkForwardPion's subscriber counts; CAU_BENCH_PION overrides.
func pionFanouts() []int {
	if v := os.Getenv("CAU_BENCH_PION"); v != "" {
		var out []int
		for _, f := range strings.Split(v, ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
				out = append(out, n)
			}
		}
		return out
	}
	return []int{1, 10, 50}
}

// pionFeed is a publisher's video track, written by one goroutine (the caller's).
type pionFeed struct {
	track   *webrtc.TrackLocalStaticRTP
	up      *UpTrack // the bridge's side of it
	seq     uint16
	ts      uint32
	start   time.Time
	payload []byte
}

// send writes one packet, a whole VP8 frame (a keyframe if key).
func (f *pionFeed) send(key bool) {
	f.seq++
	// The RTP clock follows the real one, as a camera's does: the bridge's overload
	// detection reads a stream whose timestamps lag its arrivals as a backlog.
	f.ts = uint32(time.Since(f.start) * 90000 / time.Second)
	f.payload[0], f.payload[1] = 0x10, 0x01 // S=1, partition 0; a delta frame
	if key {
		f.payload[1] = 0x00
	}
	_ = f.track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: f.seq, Timestamp: f.ts, Marker: true},
		Payload: f.payload})
}

// pionRoom is a bridge with one video publisher and n subscribers over loopback, every
// subscriber receiving; the caller's goroutine feeds the publisher from then on. The
// subscribers read a few packets, then go on reading (readAll: their pion receive path,
// as costly as the bridge's send, counts in the process's CPU) or leave the track
// unread (their stacks decrypt and buffer, then drop; for a count of allocations, not
// of CPU: the unread buffers grow by copying).
func pionRoom(t testing.TB, n int, readAll bool) *pionFeed {
	t.Helper()
	br := newTestBridge(t)
	var up atomic.Pointer[UpTrack]
	pub := newTestEndpoint(t, br, "pub", func(u *UpTrack) { up.Store(u) })
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
		"video-pub", "stream-pub")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := pub.pub.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		t.Fatal(err)
	}
	go func() { // the sender's RTCP (PLIs, NACKs), read so that it never blocks
		for {
			if _, _, err := tc.Sender().ReadRTCP(); err != nil {
				return
			}
		}
	}()
	pub.negotiatePublisher(t)
	feed := &pionFeed{track: track, payload: make([]byte, 1150), start: time.Now()}
	eventually(t, 30*time.Second, func() string {
		feed.send(true)
		time.Sleep(20 * time.Millisecond)
		if up.Load() == nil {
			return "no video published"
		}
		return ""
	})
	feed.up = up.Load()
	got := make([]atomic.Int64, n)
	for i := 0; i < n; i++ {
		sub := newTestEndpointWith(t, br, fmt.Sprintf("s%d", i), nil, endpointOpts{onVideo: func(tr *webrtc.TrackRemote) {
			buf := make([]byte, 1500)
			for got[i].Load() < 5 || readAll { // a few, to see it arrive; then unread unless readAll
				if _, _, err := tr.Read(buf); err != nil {
					return
				}
				got[i].Add(1)
			}
		}})
		if _, err := sub.peer.Subscribe(feed.up, "v", "stream-pub"); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
	}
	eventually(t, 2*time.Minute, func() string {
		feed.send(true)
		time.Sleep(20 * time.Millisecond)
		for i := range got {
			if got[i].Load() < 5 {
				return fmt.Sprintf("subscriber %d not receiving yet", i)
			}
		}
		return ""
	})
	return feed
}

// TestForwardAllocatesNothing guards BenchmarkForward's 0 allocs/op in CI: forwarding
// a packet to many subscribers allocates nothing once they have started.
func TestForwardAllocatesNothing(t *testing.T) {
	for _, n := range []int{50, 3 * parallelMin} { // one goroutine; split across workers
		t.Run(fmt.Sprint(n), func(t *testing.T) { testForwardAllocs(t, n) })
	}
}

func testForwardAllocs(t *testing.T, n int) {
	up, raw := benchUpTrack(n)
	testForwardStarted(t, up, raw)
}

// testForwardStarted forwards raw (a keyframe start) through up once to start its
// subscribers, then fails t if forwarding allocates (forwardAllocatesNothing).
func testForwardStarted(t *testing.T, up *UpTrack, raw []byte) {
	t.Helper()
	defer func() { up.fan.stop() }() // fan is created on the first packet, after this line
	var hdr rtp.Header
	var pending pendingCounts
	up.forward(raw, &hdr, &pending) // start every subscriber
	forwardAllocatesNothing(t, up, raw, &hdr, &pending)
}

// forwardAllocatesNothing forwards raw (an RTP packet, its sequence number advanced
// each time) through up 1000 times and fails t if that allocates.
func forwardAllocatesNothing(t *testing.T, up *UpTrack, raw []byte, hdr *rtp.Header, pending *pendingCounts) {
	t.Helper()
	seq := uint16(1)
	allocs := testing.AllocsPerRun(1000, func() {
		seq++
		raw[2], raw[3] = byte(seq>>8), byte(seq)
		up.forward(raw, hdr, pending)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per forwarded packet, want 0", allocs)
	}
}

// TestForwardPionAllocatesNothing guards the whole send path in CI, not only the
// bridge's part: rewrite, interceptors, SRTP, the ICE mux and the batched socket allocate
// nothing per forwarded packet. AllocsPerRun counts the whole process, so the packet is
// forwarded here, on the test's goroutine, in the bridge's track (the publisher sends
// nothing meanwhile), and the subscribers do not read it.
//
// Not under the race detector, where sync.Pool drops a share of what is put back (pion's
// SRTP buffers then allocate): make test runs it again without -race.
func TestForwardPionAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops buffers under -race; make test runs this without it")
	}
	feed := pionRoom(t, 3, false)
	// The track's reader goes idle (the publisher sends nothing more), so it and the test
	// never forward at once; the egress group's atomics order its last forward before
	// the test's first (each forward ends with a Release).
	time.Sleep(200 * time.Millisecond)
	feed.up.owner.bridge.egress.Hold()
	feed.up.owner.bridge.egress.Release()
	_, raw := benchUpTrack(0)
	raw[1] = 96
	raw[2], raw[3] = byte(feed.seq>>8), byte(feed.seq)
	var hdr rtp.Header
	var pending pendingCounts
	feed.up.forward(raw, &hdr, &pending)
	forwardAllocatesNothing(t, feed.up, raw, &hdr, &pending)
	// The path measured was own SRTP's (ownsrtp.go): the bridge encrypted for every one.
	for _, d := range *feed.up.downs.Load() {
		if o := d.sub.own; o == nil || o.dest.Load() == nil {
			t.Fatalf("subscriber %s: RTP not encrypted by the bridge (own SRTP)", d.sub.ID())
		}
	}
}

// recordWriter keeps the sequence numbers a subscriber was sent.
type recordWriter struct{ seqs []uint16 }

func (w *recordWriter) WriteRTP(h *rtp.Header, p []byte) (int, error) {
	w.seqs = append(w.seqs, h.SequenceNumber)
	return h.MarshalSize() + len(p), nil
}
func (w *recordWriter) Write(b []byte) (int, error) { return len(b), nil }

// A fan-out split across workers reaches every subscriber once per packet, in order, and
// counts every write (run with -race: the workers share no state).
func TestParallelFanOutInOrder(t *testing.T) {
	const subs, packets = 5*chunkMin + 7, 200
	up, raw := benchUpTrack(subs)
	defer func() { up.fan.stop() }() // fan is created on the first packet, after this line
	var writers []*recordWriter
	for _, d := range *up.downs.Load() {
		w := &recordWriter{}
		b := *d.binding.Load()
		b.writer = w
		d.binding.Store(&b)
		writers = append(writers, w)
	}
	var hdr rtp.Header
	var pending pendingCounts
	for i := 0; i < packets; i++ {
		raw[2], raw[3] = byte(i>>8), byte(i)
		up.forward(raw, &hdr, &pending)
		if i == 0 && pending.outPackets != subs { // the workers' counts are merged
			t.Fatalf("first packet: %d writes counted, want %d", pending.outPackets, subs)
		}
	}
	if up.fan == nil {
		t.Fatalf("%d subscribers did not start fan-out workers", subs)
	}
	for i, w := range writers {
		if len(w.seqs) != packets {
			t.Fatalf("subscriber %d got %d packets, want %d", i, len(w.seqs), packets)
		}
		for k := 1; k < len(w.seqs); k++ {
			if w.seqs[k] != w.seqs[k-1]+1 {
				t.Fatalf("subscriber %d: packet %d has sequence %d after %d", i, k, w.seqs[k], w.seqs[k-1])
			}
		}
	}
}

// A subscription outlasts the 16-bit sequence space: three times round it, every packet
// is forwarded in order, and the NACK handler's window follows (it refused every packet
// after the first 32,768 before: two minutes of video at 300 packets a second).
func TestForwardingOutlastsSequenceWrap(t *testing.T) {
	const packets = 3 << 16
	up, raw := benchUpTrack(1)
	defer func() { up.fan.stop() }()
	d := (*up.downs.Load())[0]
	w := &recordWriter{}
	b := *d.binding.Load()
	b.writer = w
	d.binding.Store(&b)
	var hdr rtp.Header
	var pending pendingCounts
	first := uint16(40000) // so that the wrap comes early too
	for i := 0; i < packets; i++ {
		seq := first + uint16(i)
		raw[2], raw[3] = byte(seq>>8), byte(seq)
		up.forward(raw, &hdr, &pending)
	}
	if len(w.seqs) != packets {
		t.Fatalf("forwarded %d of %d packets", len(w.seqs), packets)
	}
	for k := 1; k < len(w.seqs); k++ {
		if w.seqs[k] != w.seqs[k-1]+1 {
			t.Fatalf("packet %d has sequence %d after %d", k, w.seqs[k], w.seqs[k-1])
		}
	}
	newest := first + uint16((packets-1)%(1<<16))
	m := d.mapping.Load()
	if behind := newest - uint16(m.firstIn.Load()); behind < seqKeep || behind >= seqAdvance {
		t.Fatalf("the NACK window starts %d packets behind the newest, want %d to %d", behind, seqKeep, seqAdvance-1)
	}
	// A packet older than the window is not forwarded again.
	old := newest - seqAdvance
	raw[2], raw[3] = byte(old>>8), byte(old)
	up.forward(raw, &hdr, &pending)
	if len(w.seqs) != packets {
		t.Fatalf("a packet %d behind the newest was forwarded", seqAdvance)
	}
}
