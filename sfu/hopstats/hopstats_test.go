package hopstats

import (
	"context"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/internal/testpeer"
)

// TestFeedbackCountsEachSequenceOnce: statuses are counted once, across the 16-bit wrap,
// and a feedback seen twice (a compound packet handed to two streams) adds nothing.
func TestFeedbackCountsEachSequenceOnce(t *testing.T) {
	var f feedback
	run := func(base uint16, n uint16, received bool) *rtcp.TransportLayerCC {
		sym := rtcp.TypeTCCPacketReceivedSmallDelta
		if !received {
			sym = rtcp.TypeTCCPacketNotReceived
		}
		return &rtcp.TransportLayerCC{BaseSequenceNumber: base, PacketStatusCount: n,
			PacketChunks: []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{PacketStatusSymbol: sym, RunLength: n}}}
	}
	f.add(run(65530, 4, true))  // 65530..65533
	f.add(run(65534, 2, false)) // 65534, 65535 lost
	f.add(run(65534, 2, false)) // the same again
	f.add(&rtcp.TransportLayerCC{BaseSequenceNumber: 0, PacketStatusCount: 4, PacketChunks: []rtcp.PacketStatusChunk{
		&rtcp.StatusVectorChunk{SymbolSize: rtcp.TypeTCCSymbolSizeOneBit, SymbolList: []uint16{1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}}})
	f.add(run(65530, 4, true)) // old, repeated: nothing new
	if f.reported != 10 || f.lost != 3 {
		t.Fatalf("reported %d, lost %d; want 10 and 3", f.reported, f.lost)
	}
	if f.highest != 65536+3 {
		t.Fatalf("highest %d, want %d (unwrapped)", f.highest, 65536+3)
	}
	// 65535, reported missing, arrives late: the next feedback reports it received.
	f.add(run(65535, 1, true))
	if f.reported != 10 || f.lost != 2 {
		t.Fatalf("after a late arrival: reported %d, lost %d; want 10 and 2", f.reported, f.lost)
	}
	// Only media numbers count where they are tracked: 4 and 6 were retransmissions.
	f.media = &bitRing{}
	for s := int64(4); s < 8; s++ {
		f.media.set(s, s != 4 && s != 6)
	}
	f.add(run(4, 4, false))
	if f.reported != 12 || f.lost != 4 {
		t.Fatalf("with retransmissions: reported %d, lost %d; want 12 and 4", f.reported, f.lost)
	}
}

// dropper loses every nth RTP packet on the way out, after the TWCC number is stamped:
// what a lossy link does to the packets.
type dropper struct {
	interceptor.NoOp
	n     uint64
	count atomic.Uint64
}

func (d *dropper) NewInterceptor(string) (interceptor.Interceptor, error) { return d, nil }

func (d *dropper) BindLocalStream(_ *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	return interceptor.RTPWriterFunc(func(h *rtp.Header, p []byte, a interceptor.Attributes) (int, error) {
		if d.count.Add(1)%d.n == 0 {
			return h.MarshalSize() + len(p), nil
		}
		return w.Write(h, p, a)
	})
}

func api(t *testing.T, hops *Factory, drop *dropper) *webrtc.API {
	t.Helper()
	if drop == nil {
		return apiWith(t, hops, nil, false)
	}
	return apiWith(t, hops, drop, false)
}

// apiWith is a peer's API: drop (if any) nearest the network, then hops; with buffers,
// the SRTP buffers come from hops.BufferFactory, as the bridge's do.
func apiWith(t *testing.T, hops *Factory, drop interceptor.Factory, buffers bool) *webrtc.API {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if drop != nil {
		ir.Add(drop)
	}
	ir.Add(hops) // TWCC numbers and sender reports on what it sends
	receiver, err := report.NewReceiverInterceptor()
	if err != nil {
		t.Fatal(err)
	}
	ir.Add(receiver)
	if err := webrtc.ConfigureTWCCSender(me, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	// No mDNS: nobody here resolves .local names, and each peer connection would open
	// multicast sockets and a reader goroutine for it (leaked past Close on a loaded box).
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	if buffers {
		se.BufferFactory = hops.BufferFactory
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// TestHopLossAndRTTOverRealConnection: two pion peers over loopback, one losing every
// tenth packet it sends. Both ends must read 10% loss on that hop (the sender from the
// feedback it receives, the receiver from the feedback it writes), and the RTT must come
// from matched sender reports only.
func TestHopLossAndRTTOverRealConnection(t *testing.T) {
	var sendHops, recvHops Factory
	drop := &dropper{n: 10}
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "v", "s")
	if err != nil {
		t.Fatal(err)
	}
	sh, rh := connectPair(t, &sendHops, &recvHops, api(t, &sendHops, drop), api(t, &recvHops, nil), track)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	payload := make([]byte, 300)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var seq uint16
	var ts uint32
	// Send until both ends have 2,000 reported statuses and a few RTT samples (not a
	// fixed time: the box may be slow).
	for {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out: sender %+v, receiver %+v", sh.Stats(), rh.Stats())
		case <-tick.C:
		}
		ts += 450 // one frame of four packets every 5 ms, at 90 kHz
		for range 4 {
			seq++
			_ = track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts}, Payload: payload})
		}
		s, r := sh.Stats(), rh.Stats()
		if s.Out.Reported >= 2000 && r.In.Reported >= 2000 && s.RTTSamples >= 3 {
			break
		}
	}
	s, r := sh.Stats(), rh.Stats()
	outLoss := float64(s.Out.Lost) / float64(s.Out.Reported)
	inLoss := float64(r.In.Lost) / float64(r.In.Reported)
	t.Logf("HOP: sender out %+v (loss %.2f%%), receiver in %+v (loss %.2f%%), RTT mean %v over %d, max %v, dropped %d",
		s.Out, 100*outLoss, r.In, 100*inLoss, s.RTTSum/time.Duration(s.RTTSamples), s.RTTSamples, s.RTTMax, s.RTTDropped)
	for name, l := range map[string]float64{"sender's out": outLoss, "receiver's in": inLoss} {
		if math.Abs(l-0.10) > 0.01 {
			t.Errorf("%s loss %.2f%%, want 10%% ± 1 point (every tenth packet dropped)", name, 100*l)
		}
	}
	if s.RTTDropped != 0 {
		t.Errorf("%d RTT samples dropped on loopback", s.RTTDropped)
	}
	// Loopback RTT is well under a second even on a loaded box; a few seconds (the old
	// reading of 3.97 s) would mean an unmatched report.
	if s.RTTMax <= 0 || s.RTTMax > time.Second {
		t.Errorf("RTT max %v on loopback", s.RTTMax)
	}
	if s.Out.Packets == 0 || r.In.Packets == 0 || r.In.Packets >= s.Out.Packets+s.Out.Packets/10 {
		t.Errorf("packets out %d, in %d", s.Out.Packets, r.In.Packets)
	}
}

// connectPair connects a sender (on sendAPI, measured by send) that sends track to a
// receiver (on recvAPI, measured by recv) over loopback, reads what each must read for
// its interceptors to run, and returns their hop interceptors. Both close when the test
// ends.
func connectPair(t *testing.T, send, recv *Factory, sendAPI, recvAPI *webrtc.API, track webrtc.TrackLocal) (sh, rh *Interceptor) {
	t.Helper()
	sender, err := sendAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sender.Close() })
	receiver, err := recvAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = receiver.Close() })
	sh, rh = send.Take(sender.ID()), recv.Take(receiver.ID())
	if sh == nil || rh == nil {
		t.Fatal("no interceptor under the connection's id")
	}
	rtpSender, err := sender.AddTrack(track)
	if err != nil {
		t.Fatal(err)
	}
	go func() { // the sender's RTCP must be read for the reader interceptors to run
		buf := make([]byte, 1500)
		for {
			if _, _, err := rtpSender.Read(buf); err != nil {
				return
			}
		}
	}()
	receiver.OnTrack(func(tr *webrtc.TrackRemote, rr *webrtc.RTPReceiver) {
		go func() { // the sender reports reach the report generator only when read
			buf := make([]byte, 1500)
			for {
				if _, _, err := rr.Read(buf); err != nil {
					return
				}
			}
		}()
		buf := make([]byte, 1500)
		for {
			if _, _, err := tr.Read(buf); err != nil { // reading starts the RTX reader too
				return
			}
		}
	})
	testpeer.Offer(t, sender)
	if err := receiver.SetRemoteDescription(*sender.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	testpeer.Answer(t, receiver)
	if err := sender.SetRemoteDescription(*receiver.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	return sh, rh
}

// FuzzReports feeds arbitrary RTCP to both directions: whatever a peer sends, the counters
// stay consistent (never more lost than reported) and nothing panics.
func FuzzReports(f *testing.F) {
	fb := &rtcp.TransportLayerCC{BaseSequenceNumber: 65000, PacketStatusCount: 30, PacketChunks: []rtcp.PacketStatusChunk{
		&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketNotReceived, RunLength: 30}}}
	if b, err := fb.Marshal(); err == nil {
		f.Add(b)
	}
	rr := &rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{{SSRC: 2, LastSenderReport: 7, Delay: 1 << 20, Jitter: 90}}}
	if b, err := rr.Marshal(); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		pkts, err := rtcp.Unmarshal(raw)
		if err != nil {
			return
		}
		i := newInterceptor(nil)
		i.clock[2] = 90000
		now := time.Unix(1_000_000, 0)
		i.written([]rtcp.Packet{&rtcp.SenderReport{SSRC: 2, NTPTime: 7 << 16}}, now)
		i.read(pkts, now.Add(time.Second))
		i.written(pkts, now.Add(time.Second))
		s := i.Stats()
		if s.Out.Lost > s.Out.Reported || s.In.Lost > s.In.Reported || s.RTTMax < 0 {
			t.Fatalf("inconsistent: %+v", s)
		}
	})
}

// The queue delay: feedback whose packets took longer and longer (a queue filling) reads
// as a growing queue above the least delay seen, whatever the two clocks' offset.
func TestQueueDelay(t *testing.T) {
	var d delays
	t0 := time.Unix(100, 0)
	// Send times are kept as 16 bits of 250 µs ticks and read back against the feedback's
	// arrival, whichever side of a 16-bit wrap the two fall, rounded down to the tick.
	for _, now := range []int64{1 << 40, (1<<24+3)*sentTick + 5, 1<<24*sentTick - 5, 7 + 1<<30} {
		for _, age := range []int64{0, 3, 7_900_000, -2_000} { // a wall clock may step back
			var ring sentTimes
			ring.store(9, now-age)
			ring.store(10, now) // the other half of the word
			if got, want := sentAt(ring.load(9), now), now-age; got > want || got <= want-sentTick {
				t.Errorf("sent %d µs before %d: read back as %d (%d off)", age, now, got, got-want)
			}
		}
	}
	// A connection that has sent nothing holds no send-time ring (4 KiB), and feedback
	// then changes nothing.
	d.add(&rtcp.TransportLayerCC{PacketStatusCount: 1, PacketChunks: []rtcp.PacketStatusChunk{
		&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketReceivedSmallDelta, RunLength: 1}},
		RecvDeltas: []*rtcp.RecvDelta{{Type: rtcp.TypeTCCPacketReceivedSmallDelta}}}, t0)
	if d.sent.Load() != nil || d.have || d.queue != 0 {
		t.Fatalf("before any packet sent: ring %v, baseline %v, queue %v", d.sent.Load() != nil, d.have, d.queue)
	}
	feedback := func(base uint16, sentAt time.Time, spacing, extra time.Duration) *rtcp.TransportLayerCC {
		const n = 10
		fb := &rtcp.TransportLayerCC{BaseSequenceNumber: base, PacketStatusCount: n,
			PacketChunks: []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketReceivedSmallDelta, RunLength: n}}}
		// The far end's clock runs 7 s ahead of ours; the first arrival is the reference.
		first := sentAt.Add(7*time.Second + 20*time.Millisecond + extra)
		fb.ReferenceTime = uint32(first.UnixMicro() / 64_000)
		arrival := int64(fb.ReferenceTime) * 64_000
		for k := 0; k < n; k++ {
			d.noteSent(base+uint16(k), sentAt.Add(time.Duration(k)*spacing))
			at := first.Add(time.Duration(k) * spacing).UnixMicro()
			fb.RecvDeltas = append(fb.RecvDeltas, &rtcp.RecvDelta{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: at - arrival})
			arrival = at
		}
		return fb
	}
	d.add(feedback(0, t0, 5*time.Millisecond, 0), t0)
	if d.queue > time.Millisecond {
		t.Fatalf("queue %v with none", d.queue)
	}
	for k := 1; k <= 5; k++ { // each feedback 30 ms more delayed
		at := t0.Add(time.Duration(k) * 100 * time.Millisecond)
		d.add(feedback(uint16(10*k), at, 5*time.Millisecond, time.Duration(k)*30*time.Millisecond), at)
	}
	if d.queue < 140*time.Millisecond || d.queue > 180*time.Millisecond {
		t.Fatalf("queue %v after the delay grew by 150 ms", d.queue)
	}
	// Lost packets carry no delta; a feedback of losses only changes nothing.
	lost := &rtcp.TransportLayerCC{BaseSequenceNumber: 60, PacketStatusCount: 5,
		PacketChunks: []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketNotReceived, RunLength: 5}}}
	q := d.queue
	d.add(lost, t0.Add(time.Second))
	if d.queue != q {
		t.Fatalf("queue %v after a feedback of losses, was %v", d.queue, q)
	}
}
