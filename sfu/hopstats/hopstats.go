// Package hopstats measures one peer connection as one hop of a media path: the loss, jitter,
// round-trip time and volume of what crosses that connection alone.
//
// Why not the receiver reports' loss: the bridge forwards gaps as gaps (a subscriber can
// NACK them), so a receiver report about a forwarded stream counts every packet lost
// upstream too, at every hop it crosses. Transport-wide congestion control sequence
// numbers are stamped afresh by each hop's sender, per connection, so the gaps the
// receiver reports in its TWCC feedback are this connection's loss and nothing else.
// The interceptor reads both feedbacks of its connection: the one the far end sends
// about what this side sent (the out direction) and the one this side's TWCC generator
// writes about what it received (the in direction).
//
// RTT comes from receiver reports, validated against the sender reports this side sent:
// an LSR that matches no sender report sent here, or an RTT longer than the time since
// that report went out, is dropped and counted, never averaged in.
//
// All figures are cumulative counters; whoever reads them windows them (the monitor uses
// one window for every figure), so two readers never disturb each other.
//
// The interceptor also does the send side's per-packet work that the measurement rests
// on, in the same layer (sender.go): it stamps the TWCC sequence numbers and sends the
// sender reports.
package hopstats

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// Factory makes one Interceptor per peer connection and keeps it, under the connection's
// id, until Take claims it.
type Factory struct {
	pending sync.Map // peer connection id → *Interceptor
	reports reporter // sends every connection's sender reports (sender.go)
	// local lists, by SSRC, the connections that send it (rtxfeedback.go). localMu may be
	// taken while holding an Interceptor's mu, never the other way round.
	localMu sync.RWMutex
	local   map[uint32][]localSSRC
}

// NewInterceptor implements interceptor.Factory.
func (f *Factory) NewInterceptor(id string) (interceptor.Interceptor, error) {
	i := newInterceptor(&f.reports)
	i.factory = f
	i.release = func() { f.pending.Delete(id) }
	f.pending.Store(id, i)
	return i, nil
}

// Take returns the interceptor built for the peer connection with this id
// (webrtc.PeerConnection.ID) and forgets it; nil if there is none.
func (f *Factory) Take(id string) *Interceptor {
	v, ok := f.pending.LoadAndDelete(id)
	if !ok {
		return nil
	}
	return v.(*Interceptor)
}

// Direction is one direction of a hop, as cumulative counters since the connection began.
type Direction struct {
	// Packets and Bytes crossed this side (sent for Out, received for In); RTP header and
	// payload (and padding), retransmissions included.
	Packets, Bytes uint64
	// Reported packets had a status in the receiving end's TWCC feedback; Lost of them were
	// reported missing. Zero Reported means the far end sends no feedback (or no packet
	// carried a TWCC number).
	Reported, Lost uint64
	// Jitter is the latest receiver-report jitter of the worst stream (RFC 3550), over the
	// streams reported in the last JitterFresh.
	Jitter time.Duration
	// QueueDelay (out direction only) is the queue the last TWCC feedback found on the
	// path: its packets' mean one-way delay above the least of the last 5–10 s (delay.go).
	QueueDelay time.Duration
}

// Stats are a hop's figures.
type Stats struct {
	Out, In Direction
	// RTTSum and RTTSamples are the validated round-trip samples so far (mean = sum/n);
	// RTTDropped counts samples refused: no matching sender report, or impossible.
	RTTSum                 time.Duration
	RTTSamples, RTTDropped uint64
	// RTTMax is the largest validated sample in the current and the previous RTTMaxPeriod.
	RTTMax time.Duration
}

// JitterFresh is how long a stream's reported jitter counts after its latest report.
const JitterFresh = 5 * time.Second

// RTTMaxPeriod is the period of the RTT maximum (two periods are kept).
const RTTMaxPeriod = 5 * time.Second

// srRing holds the sender reports sent lately: enough for a second of reports on 64
// streams (pion sends one per stream a second).
const srRing = 64

type srSent struct {
	ssrc, mid uint32
	at        time.Time
}

type jitterSample struct {
	rtpUnits uint32
	at       time.Time
}

// seqBits is how many recent TWCC sequence numbers the bit rings cover: far more than
// one feedback interval carries (100 ms of packets).
const seqBits = 1 << 12

// bitRing is one bit per recent sequence number (seq mod seqBits).
type bitRing [seqBits / 64]atomic.Uint64

func (b *bitRing) set(seq int64, on bool) {
	w, bit := &b[(seq%seqBits)/64], uint64(1)<<(seq%64)
	if on {
		w.Or(bit)
	} else {
		w.And(^bit)
	}
}

func (b *bitRing) get(seq int64) bool { return b[(seq%seqBits)/64].Load()&(uint64(1)<<(seq%64)) != 0 }

// feedback tracks one direction's TWCC statuses. Owned by Interceptor.mu, except media's
// bits, which the sending goroutines set atomically.
type feedback struct {
	started  bool
	highest  int64 // extended sequence number of the newest status counted
	reported uint64
	lost     uint64
	lostBits bitRing // counted lost, for a late arrival reported afterwards
	// media, when tracked (the out direction), marks the numbers that went out on a media
	// stream: statuses of others (retransmissions, which a receiver may read on another
	// path or not at all) are not counted. Indexed by the 16-bit number.
	media *bitRing
}

// add counts the statuses of one feedback packet. Each number counts once: a feedback
// seen twice (a compound packet delivered to each stream it names) adds nothing the
// second time, and a packet reported missing then received late moves from lost to
// received.
func (f *feedback) add(fb *rtcp.TransportLayerCC) {
	base := int64(fb.BaseSequenceNumber)
	if f.started {
		// Unwrap the 16-bit base next to the newest counted number.
		base = f.highest + int64(int16(fb.BaseSequenceNumber-uint16(f.highest)))
	} else {
		f.started, f.highest = true, base-1
	}
	seq, left := base, int(fb.PacketStatusCount)
	count := func(received bool, n int) {
		for ; n > 0 && left > 0; n, left, seq = n-1, left-1, seq+1 {
			if seq < 0 || (f.media != nil && !f.media.get(int64(uint16(seq)))) {
				continue
			}
			if seq <= f.highest {
				if received && seq > f.highest-seqBits && f.lostBits.get(seq) {
					f.lost--
					f.lostBits.set(seq, false)
				}
				continue
			}
			for s := max(f.highest+1, seq-seqBits+1); s < seq; s++ { // skipped numbers (not media) leave no trace
				f.lostBits.set(s, false)
			}
			f.highest = seq
			f.reported++
			f.lostBits.set(seq, !received)
			if !received {
				f.lost++
			}
		}
	}
	for _, c := range fb.PacketChunks {
		switch c := c.(type) {
		case *rtcp.RunLengthChunk:
			count(c.PacketStatusSymbol != rtcp.TypeTCCPacketNotReceived, int(c.RunLength))
		case *rtcp.StatusVectorChunk:
			for _, s := range c.SymbolList {
				count(s != rtcp.TypeTCCPacketNotReceived, 1)
			}
		}
	}
}

// Interceptor measures its peer connection. Counters of packets are atomics (the media
// goroutines add to them without a lock); everything else is guarded by mu and touched
// only when RTCP passes, a few times a second.
type Interceptor struct {
	interceptor.NoOp
	release func()
	factory *Factory // nil in tests that make an interceptor alone

	outPackets, outBytes atomic.Uint64
	inPackets, inBytes   atomic.Uint64
	twccNext             atomic.Uint32 // the next TWCC sequence number sent (low 16 bits)
	// egress, when set, sends the connection's RTP in place of pion's SRTP session and ICE
	// conn (SetEgress): the last step of every stream's write, after the numbering.
	egress atomic.Pointer[egressBox]

	mu          sync.Mutex
	clock       map[uint32]uint32 // SSRC → RTP clock rate, local and remote streams
	out, in     feedback
	outDelay    delays
	outJitter   map[uint32]jitterSample // local SSRC → what the far end reports
	inJitter    map[uint32]jitterSample // remote SSRC → what this side reports
	srs         [srRing]srSent
	srNext      int
	rttSum      time.Duration
	rttN        uint64
	rttDropped  uint64
	rttMax      [2]time.Duration // current and previous period
	rttMaxSince time.Time        // start of the current period
	now         func() time.Time // time.Now; tests replace it
	// The streams sent and the sender reports (sender.go): rtcpOut is the connection's
	// RTCP writer, as wrapped here (so that the reports sent are noted for RTT); reports
	// sends them, from when there are both until Close (reporting: enrolled there).
	local     map[uint32]*localStream
	rtcpOut   interceptor.RTCPWriter
	reporter  *reporter
	reporting bool
	closed    chan struct{}
	closeOnce sync.Once
	// sending is held while the reporter writes this connection's reports; Close takes
	// it, so that none is written after Close returns.
	sending sync.Mutex
}

// newInterceptor makes an interceptor whose reports r sends; nil gives it a reporter of
// its own (tests).
func newInterceptor(r *reporter) *Interceptor {
	if r == nil {
		r = &reporter{}
	}
	i := &Interceptor{clock: map[uint32]uint32{}, outJitter: map[uint32]jitterSample{}, reporter: r,
		inJitter: map[uint32]jitterSample{}, now: time.Now, local: map[uint32]*localStream{}, closed: make(chan struct{})}
	i.out.media = &bitRing{}
	return i
}

// Stats returns the hop's figures so far.
func (i *Interceptor) Stats() Stats {
	s := Stats{
		Out: Direction{Packets: i.outPackets.Load(), Bytes: i.outBytes.Load()},
		In:  Direction{Packets: i.inPackets.Load(), Bytes: i.inBytes.Load()},
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	now := i.now()
	s.Out.Reported, s.Out.Lost = i.out.reported, i.out.lost
	s.In.Reported, s.In.Lost = i.in.reported, i.in.lost
	s.Out.Jitter = i.worstJitter(i.outJitter, now)
	s.Out.QueueDelay = i.outDelay.queue
	s.In.Jitter = i.worstJitter(i.inJitter, now)
	s.RTTSum, s.RTTSamples, s.RTTDropped = i.rttSum, i.rttN, i.rttDropped
	i.rollRTTMax(now)
	s.RTTMax = max(i.rttMax[0], i.rttMax[1])
	return s
}

// worstJitter is the largest fresh jitter of m, dropping stale entries. Caller holds mu.
func (i *Interceptor) worstJitter(m map[uint32]jitterSample, now time.Time) time.Duration {
	var worst time.Duration
	for ssrc, j := range m {
		if now.Sub(j.at) > JitterFresh {
			delete(m, ssrc)
			continue
		}
		if rate := i.clock[ssrc]; rate > 0 {
			worst = max(worst, time.Duration(uint64(j.rtpUnits)*uint64(time.Second)/uint64(rate)))
		}
	}
	return worst
}

// rollRTTMax starts a new maximum period when the current one is over. Caller holds mu.
func (i *Interceptor) rollRTTMax(now time.Time) {
	switch d := now.Sub(i.rttMaxSince); {
	case d >= 2*RTTMaxPeriod:
		i.rttMax = [2]time.Duration{}
		i.rttMaxSince = now
	case d >= RTTMaxPeriod:
		i.rttMax[1], i.rttMax[0] = i.rttMax[0], 0
		i.rttMaxSince = i.rttMaxSince.Add(RTTMaxPeriod)
	}
}

// BindLocalStream implements interceptor.Interceptor: it numbers what is sent for TWCC
// (one counter per connection: the numbers are transport-wide), counts it, keeps its
// sender-report state (sender.go), and marks the TWCC numbers of media packets sent in
// order, so that only they count in the far end's feedback. Others are not the hop's to
// judge: a retransmission (on its own SSRC, or on the media SSRC without RTX) and a
// packet forwarded late, after it was repaired upstream, which the receiver's SRTP replay
// window may refuse before its TWCC generator sees it.
func (i *Interceptor) BindLocalStream(info *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	i.noteClock(info)
	var twccID uint8
	for _, e := range info.RTPHeaderExtensions {
		if e.URI == transportCCURI {
			twccID = uint8(e.ID)
		}
	}
	s := &localStream{ssrc: info.SSRC, rtxSSRC: info.SSRCRetransmission, clock: float64(info.ClockRate)}
	i.mu.Lock()
	i.local[info.SSRC] = s
	i.startReports()
	// Listed under mu, unless closed: Close forgets what it finds in local.
	if i.factory != nil && !i.isClosed() {
		i.factory.addLocal(s.ssrc, i, false)
		if s.rtxSSRC != 0 { // its feedback may come addressed to the RTX SSRC (rtxfeedback.go)
			i.factory.addLocal(s.rtxSSRC, i, true)
		}
	}
	i.mu.Unlock()
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		return i.write(s, twccID, writer, h, payload, a)
	})
}

// UnbindLocalStream implements interceptor.Interceptor: the stream is no longer reported.
func (i *Interceptor) UnbindLocalStream(info *interceptor.StreamInfo) {
	i.mu.Lock()
	s := i.local[info.SSRC]
	delete(i.local, info.SSRC)
	i.mu.Unlock()
	if s != nil {
		i.forget(s)
	}
}

// isClosed reports whether Close was called.
func (i *Interceptor) isClosed() bool {
	select {
	case <-i.closed:
		return true
	default:
		return false
	}
}

// forget removes s from the Factory's list of local SSRCs.
func (i *Interceptor) forget(s *localStream) {
	if i.factory == nil {
		return
	}
	i.factory.removeLocal(s.ssrc, i)
	if s.rtxSSRC != 0 {
		i.factory.removeLocal(s.rtxSSRC, i)
	}
}

// transportCCURI is the TWCC header extension (sdp.TransportCCURI).
const transportCCURI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"

// BindRemoteStream implements interceptor.Interceptor: it counts what arrives.
func (i *Interceptor) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	i.noteClock(info)
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, attr, err := reader.Read(b, a)
		if err == nil && n > 0 {
			i.inPackets.Add(1)
			i.inBytes.Add(uint64(n))
		}
		return n, attr, err
	})
}

func (i *Interceptor) noteClock(info *interceptor.StreamInfo) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if info.SSRC != 0 {
		i.clock[info.SSRC] = info.ClockRate
	}
}

// BindRTCPWriter implements interceptor.Interceptor: it reads what this side reports
// (TWCC feedback and receiver reports on what it receives) and notes the sender reports
// it sends, for validating RTT.
func (i *Interceptor) BindRTCPWriter(writer interceptor.RTCPWriter) interceptor.RTCPWriter {
	w := interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, a interceptor.Attributes) (int, error) {
		n, err := writer.Write(pkts, a)
		if err == nil {
			i.written(pkts, i.now())
		}
		return n, err
	})
	i.mu.Lock()
	i.rtcpOut = w
	i.startReports()
	i.mu.Unlock()
	return w
}

// BindRTCPReader implements interceptor.Interceptor: it reads what the far end reports
// on what this side sends.
func (i *Interceptor) BindRTCPReader(reader interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, attr, err := reader.Read(b, a)
		if err != nil {
			return n, attr, err
		}
		if attr == nil {
			attr = interceptor.Attributes{}
		}
		pkts, perr := attr.GetRTCPPackets(b[:n])
		if perr == nil {
			i.read(pkts, i.now())
		}
		return n, attr, err
	})
}

func (i *Interceptor) written(pkts []rtcp.Packet, now time.Time) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.TransportLayerCC:
			i.in.add(p)
		case *rtcp.ReceiverReport:
			noteJitter(i.inJitter, p.Reports, now)
		case *rtcp.SenderReport:
			i.srs[i.srNext] = srSent{ssrc: p.SSRC, mid: uint32(p.NTPTime >> 16), at: now}
			i.srNext = (i.srNext + 1) % srRing
			noteJitter(i.inJitter, p.Reports, now)
		}
	}
}

func (i *Interceptor) read(pkts []rtcp.Packet, now time.Time) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.TransportLayerCC:
			i.out.add(p)
			i.outDelay.add(p, now)
		case *rtcp.ReceiverReport:
			i.reports(p.Reports, now)
		case *rtcp.SenderReport:
			i.reports(p.Reports, now)
		}
	}
}

func noteJitter(m map[uint32]jitterSample, rr []rtcp.ReceptionReport, now time.Time) {
	for _, r := range rr {
		m[r.SSRC] = jitterSample{rtpUnits: r.Jitter, at: now}
	}
}

// reports takes the far end's reception reports on this side's streams: jitter, and an
// RTT sample where the report answers a sender report sent here. Caller holds mu.
func (i *Interceptor) reports(rr []rtcp.ReceptionReport, now time.Time) {
	for _, r := range rr {
		if _, local := i.clock[r.SSRC]; !local {
			continue // about a stream this side does not send
		}
		i.outJitter[r.SSRC] = jitterSample{rtpUnits: r.Jitter, at: now}
		if r.LastSenderReport == 0 {
			continue // no sender report received yet: no RTT in this report
		}
		var sent time.Time
		for _, s := range i.srs {
			if s.ssrc == r.SSRC && s.mid == r.LastSenderReport && !s.at.IsZero() {
				sent = s.at
				break
			}
		}
		// A report repeats its LSR until the next sender report arrives: several samples
		// may answer one report, each with its own DLSR; all are valid.
		delay := time.Duration(uint64(r.Delay) * uint64(time.Second) >> 16)
		rtt := now.Sub(sent) - delay // never more than the time since the report went out
		if sent.IsZero() || rtt < 0 {
			i.rttDropped++
			continue
		}
		i.rttSum += rtt
		i.rttN++
		i.rollRTTMax(now)
		i.rttMax[0] = max(i.rttMax[0], rtt)
	}
}

// Close implements interceptor.Interceptor: its reports stop (none is written after
// Close returns), and an unclaimed interceptor is forgotten.
func (i *Interceptor) Close() error {
	i.mu.Lock() // orders the close against startReports
	i.closeOnce.Do(func() { close(i.closed) })
	reporting := i.reporting
	streams := make([]*localStream, 0, len(i.local))
	for ssrc, s := range i.local {
		streams = append(streams, s)
		delete(i.local, ssrc)
	}
	i.mu.Unlock()
	for _, s := range streams {
		i.forget(s)
	}
	if reporting {
		i.reporter.remove(i)
	}
	i.sending.Lock()   // a report in progress ends; the next sees closed
	i.sending.Unlock() //nolint:staticcheck // an empty critical section: waits, on purpose
	if i.release != nil {
		i.release()
	}
	return nil
}
