package sipgw

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// RTCP with the room (RFC 3550 §6.4): each leg counts what it sends and receives, and the
// call's reporter sends the room a sender report with a reception report block every
// rtcpInterval. The room's reception reports on what the gateway sends (jitter, loss,
// and with LSR/DLSR the round trip against the gateway's sender reports) and the
// gateway's own figures of what the room sends (jitter and loss measured on arrival)
// feed the cau_sip_* metrics and the monitor's view of the room's link.

// rtcpInterval is how often the gateway reports to the room: RFC 3550's 5 s minimum
// scaled down as its §6.2 allows for a session of two members with ample bandwidth;
// room codecs send theirs every 1-5 s.
const rtcpInterval = 2 * time.Second

// maxRTT bounds a round trip taken from a report: a larger one is a stale or forged LSR.
const maxRTT = 10 * time.Second

// legStats is one leg's RTP statistics. The send side's counters are atomics (written by
// the goroutines that send to the room: the mix loop, the video forwarders); the receive
// side and the report figures are guarded by mu (the leg's reader goroutines and the
// reporter).
type legStats struct {
	clock float64 // the stream's RTP clock rate

	sentPackets, sentOctets atomic.Uint32
	lastTS                  atomic.Uint32 // RTP timestamp of the latest packet sent
	lastSent                atomic.Int64  // unix nanos of the latest packet sent, 0 before any

	mu sync.Mutex
	// What the room sends (RFC 3550 A.1, A.3, A.8).
	roomSSRC                  uint32
	started                   bool
	baseSeq, maxSeq           uint16
	cycles                    uint32
	received, bytes           uint64
	expectedPrior, recvPrior  uint64
	transit                   int64
	jitter                    float64 // in RTP ticks
	lastRecv                  time.Time
	fractionLost              uint8 // of the latest interval, for our report block
	lsr                       uint32
	lsrAt                     time.Time // arrival of the room's latest sender report
	rtt, roomJitter, roomLoss float64   // from the room's latest report on what we send (s, s, ratio)
	roomReportAt              time.Time
	lossInterval              float64 // of what the room sends, the latest interval's (ratio)
	// recvRate and sentRate are the bit rates over the latest report interval (bit/s),
	// from the byte counts at rateAt.
	recvRate, sentRate   float64
	rateAt               time.Time
	rateRecvB, rateSentB uint64
	// srSent are the latest sender reports sent, srNext the next slot to write.
	srSent [4]srSent
	srNext int
}

// srSent is a sender report the gateway sent: its NTP time's middle 32 bits (what the
// room's LSR echoes) and when it went.
type srSent struct {
	mid uint32
	at  time.Time
}

// sent counts one packet of payload bytes sent to the room with RTP timestamp ts.
// Any sending goroutine; allocates nothing.
func (s *legStats) sent(ts uint32, payload int) {
	s.sentPackets.Add(1)
	s.sentOctets.Add(uint32(payload))
	s.lastTS.Store(ts)
	s.lastSent.Store(time.Now().UnixNano())
}

// receivedPacket counts one packet from the room (its RTP reader goroutine): loss from
// the sequence numbers, interarrival jitter from the timestamps.
func (s *legStats) receivedPacket(h *rtp.Header, size int, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started || h.SSRC != s.roomSSRC {
		s.roomSSRC, s.started = h.SSRC, true
		s.baseSeq, s.maxSeq, s.cycles = h.SequenceNumber, h.SequenceNumber, 0
		s.received, s.expectedPrior, s.recvPrior, s.jitter = 0, 0, 0, 0
		s.transit = int64(float64(at.UnixNano())*s.clock/1e9) - int64(h.Timestamp)
	}
	s.received++
	s.bytes += uint64(size)
	s.lastRecv = at
	if d := h.SequenceNumber - s.maxSeq; d > 0 && d < 1<<15 {
		if h.SequenceNumber < s.maxSeq {
			s.cycles += 1 << 16
		}
		s.maxSeq = h.SequenceNumber
	}
	transit := int64(float64(at.UnixNano())*s.clock/1e9) - int64(h.Timestamp)
	d := transit - s.transit
	s.transit = transit
	if d < 0 {
		d = -d
	}
	if d < int64(s.clock) { // a jump of a second or more is a new timeline, not jitter
		s.jitter += (float64(d) - s.jitter) / 16
	}
}

// expected is the packets the room sent since the first received. Caller holds mu.
func (s *legStats) expected() uint64 {
	return uint64(s.cycles) + uint64(s.maxSeq) - uint64(s.baseSeq) + 1
}

// block is the reception report block on what the room sends, and advances the interval
// of its fraction lost. Caller holds mu.
func (s *legStats) block(now time.Time) (rtcp.ReceptionReport, bool) {
	if !s.started {
		return rtcp.ReceptionReport{}, false
	}
	exp := s.expected()
	expInt, recvInt := exp-s.expectedPrior, s.received-s.recvPrior
	s.expectedPrior, s.recvPrior = exp, s.received
	s.fractionLost, s.lossInterval = 0, 0
	if expInt > 0 && expInt > recvInt {
		s.lossInterval = float64(expInt-recvInt) / float64(expInt)
		s.fractionLost = uint8(min(255, (expInt-recvInt)<<8/expInt))
	}
	lost := uint32(0)
	if exp > s.received {
		lost = uint32(min(exp-s.received, 1<<23-1))
	}
	r := rtcp.ReceptionReport{SSRC: s.roomSSRC, FractionLost: s.fractionLost, TotalLost: lost,
		LastSequenceNumber: s.cycles + uint32(s.maxSeq), Jitter: uint32(s.jitter)}
	if !s.lsrAt.IsZero() {
		r.LastSenderReport = s.lsr
		r.Delay = uint32(now.Sub(s.lsrAt).Seconds() * 65536)
	}
	return r, true
}

// report builds the leg's RTCP for the room: a sender report once it has sent media, else
// a receiver report, with a block on what the room sends. Reporter goroutine.
func (s *legStats) report(ssrc uint32, now time.Time) rtcp.Packet {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rates(now)
	var blocks []rtcp.ReceptionReport
	if b, ok := s.block(now); ok {
		blocks = append(blocks, b)
	}
	last := s.lastSent.Load()
	if last == 0 {
		return &rtcp.ReceiverReport{SSRC: ssrc, Reports: blocks}
	}
	ntp := ntpTime(now)
	s.srSent[s.srNext%len(s.srSent)] = srSent{mid: uint32(ntp >> 16), at: now}
	s.srNext++
	ts := s.lastTS.Load() + uint32(now.Sub(time.Unix(0, last)).Seconds()*s.clock)
	return &rtcp.SenderReport{SSRC: ssrc, NTPTime: ntp, RTPTime: ts, PacketCount: s.sentPackets.Load(),
		OctetCount: s.sentOctets.Load(), Reports: blocks}
}

// rates updates the bit rates from the byte counts since the last report. Caller holds mu.
func (s *legStats) rates(now time.Time) {
	sent := uint64(s.sentOctets.Load())
	if dt := now.Sub(s.rateAt).Seconds(); !s.rateAt.IsZero() && dt > 0 {
		s.recvRate = 8 * float64(s.bytes-s.rateRecvB) / dt
		s.sentRate = 8 * float64(uint32(sent)-uint32(s.rateSentB)) / dt // the octet count wraps at 2³²
	}
	s.rateAt, s.rateRecvB, s.rateSentB = now, s.bytes, sent
}

// roomSR records the room's sender report, for the LSR and DLSR of our next block.
func (s *legStats) roomSR(sr *rtcp.SenderReport, at time.Time) {
	s.mu.Lock()
	s.lsr, s.lsrAt = uint32(sr.NTPTime>>16), at
	s.mu.Unlock()
}

// roomReport records the room's reception report block on what we send: its jitter and
// fraction lost, and the round trip (RFC 3550 §6.4.1: arrival − LSR − DLSR) when it
// answers one of our sender reports. It returns the round trip, 0 if none.
func (s *legStats) roomReport(r *rtcp.ReceptionReport, at time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roomJitter = float64(r.Jitter) / s.clock
	s.roomLoss = float64(r.FractionLost) / 256
	s.roomReportAt = at
	if r.LastSenderReport == 0 {
		return 0
	}
	for _, sr := range s.srSent {
		if sr.mid != r.LastSenderReport || sr.at.IsZero() {
			continue
		}
		// Our own clock for both ends of the interval, less the room's hold (DLSR).
		rtt := at.Sub(sr.at) - time.Duration(float64(r.Delay)/65536*float64(time.Second))
		if rtt <= 0 || rtt > maxRTT {
			return 0
		}
		s.rtt = rtt.Seconds()
		return rtt
	}
	return 0
}

// linkFigures are the leg's figures for the monitor.
type linkFigures struct {
	// Of what the room sends: packets and bytes received, loss since the start and in
	// the latest interval, jitter (s), the latest packet's arrival.
	recvPackets, recvBytes uint64
	lossTotal, jitter      float64
	lastRecv               time.Time
	// Of what the gateway sends, from the room's reports: round trip, jitter (s), loss.
	rtt, roomJitter, roomLoss float64
	reported                  bool
	sentPackets, sentBytes    uint64
	lastSent                  time.Time
	// recvRate and sentRate are the bit rates each way over the latest report interval.
	recvRate, sentRate float64
}

// figures returns the leg's current figures. Any goroutine.
func (s *legStats) figures() linkFigures {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := linkFigures{recvPackets: s.received, recvBytes: s.bytes, jitter: s.jitter / s.clock, lastRecv: s.lastRecv,
		rtt: s.rtt, roomJitter: s.roomJitter, roomLoss: s.roomLoss, reported: !s.roomReportAt.IsZero(),
		sentPackets: uint64(s.sentPackets.Load()), sentBytes: uint64(s.sentOctets.Load()), recvRate: s.recvRate,
		sentRate: s.sentRate}
	if s.started {
		if exp := s.expected(); exp > s.received {
			f.lossTotal = float64(exp-s.received) / float64(exp)
		}
	}
	if t := s.lastSent.Load(); t != 0 {
		f.lastSent = time.Unix(0, t)
	}
	return f
}

// ntpEpochOffset is the seconds from 1900 (NTP's epoch) to 1970 (Unix's).
const ntpEpochOffset = 2_208_988_800

// ntpTime is t as a 64-bit NTP timestamp.
func ntpTime(t time.Time) uint64 {
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}
