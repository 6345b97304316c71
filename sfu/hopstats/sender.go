package hopstats

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// The interceptor is the whole send side of a connection's RTP, in one layer: it stamps
// each packet's TWCC sequence number, counts it for this hop, and keeps what the sender
// reports (RFC 3550 §6.4.1) say, which it sends every SenderReportInterval. Before, three
// layers did this (a TWCC stamper, pion's report.SenderInterceptor, the hop counters),
// each with its own lock and closure per packet, and pion's taking the clock per packet:
// 10% of the bridge's CPU at 1 × 300 went to the layers themselves.

// SenderReportInterval is how often a sender report goes out for each stream sent.
const SenderReportInterval = time.Second

// localStream is one stream this side sends. Its writers (the fan-out for media, the NACK
// handler for retransmissions) take mu for the whole write: the TWCC extension's bytes
// live in twcc until the write below returns.
type localStream struct {
	ssrc    uint32
	rtxSSRC uint32  // its retransmission stream's, 0 without one
	clock   float64 // RTP clock rate

	mu      sync.Mutex
	twcc    [2]byte
	started bool   // a media packet was sent
	newest  uint16 // the newest media sequence number sent
	// For the sender report: the RTP timestamp of the newest frame sent in order and when
	// its first packet went out (the clock is read once per frame, not per packet), and
	// the media packets and payload octets sent.
	lastTS   uint32
	lastTSAt time.Time
	packets  uint32
	octets   uint32
}

// write is the stream's RTP writer: TWCC number, hop counters and report state, then the
// next writer (SRTP and the socket).
func (i *Interceptor) write(s *localStream, twccID uint8, next interceptor.RTPWriter,
	h *rtp.Header, payload []byte, a interceptor.Attributes,
) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	media := h.SSRC == s.ssrc // else a retransmission on the RTX stream
	inOrder := false
	if media {
		if !s.started || int16(h.SequenceNumber-s.newest) > 0 {
			inOrder = true
			if !s.started || h.Timestamp != s.lastTS {
				s.lastTS, s.lastTSAt = h.Timestamp, time.Now()
			}
			s.started, s.newest = true, h.SequenceNumber
		}
		s.packets++
		s.octets += uint32(len(payload))
	}
	if twccID != 0 {
		seq := uint16(i.twccNext.Add(1) - 1)
		binary.BigEndian.PutUint16(s.twcc[:], seq)
		if err := h.SetExtension(twccID, s.twcc[:]); err != nil {
			return 0, err
		}
		// Only media sent in order counts in the far end's feedback (see BindLocalStream).
		i.out.media.set(int64(seq), inOrder)
		i.outDelay.noteSent(seq, time.Now())
	}
	var n int
	var err error
	if e := i.egress.Load(); e != nil {
		n, err = e.WriteRTP(h, payload)
	} else {
		n, err = next.Write(h, payload, a)
	}
	if err == nil {
		i.outPackets.Add(1)
		i.outBytes.Add(uint64(h.MarshalSize() + len(payload) + int(h.PaddingSize))) // a probe's padding too
	}
	return n, err
}

// report is the stream's sender report at now; nil before its first media packet (RFC
// 3550 §6.4: a source that has sent nothing sends no SR).
func (s *localStream) report(now time.Time) *rtcp.SenderReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return nil
	}
	return &rtcp.SenderReport{
		SSRC:        s.ssrc,
		NTPTime:     ntpTime(now),
		RTPTime:     s.lastTS + uint32(now.Sub(s.lastTSAt).Seconds()*s.clock),
		PacketCount: s.packets,
		OctetCount:  s.octets,
	}
}

// ntpTime is t as a 64-bit NTP timestamp: seconds since 1900 in the high 32 bits, the
// fraction in the low 32.
func ntpTime(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800 // seconds from 1900 to 1970
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return secs<<32 | frac
}

// startReports enrols the connection with its Factory's reporter once it has both its
// RTCP writer and a stream to report on: a connection that sends nothing (the publisher
// connection of an endpoint that only watches) is never visited. Caller holds i.mu.
func (i *Interceptor) startReports() {
	if i.reporting || i.rtcpOut == nil || len(i.local) == 0 {
		return
	}
	select {
	case <-i.closed:
		return
	default:
	}
	i.reporting = true
	i.reporter.add(i)
}

// reporter sends the sender reports of every connection of one Factory, from one
// goroutine and one ticker. A goroutine and a ticker per sending connection (4-8 kB of
// stack and a timer each, every endpoint's subscriber connection) was what a report a
// second cost before (issue 11). The goroutine runs while any connection is enrolled.
type reporter struct {
	mu      sync.Mutex
	members map[*Interceptor]struct{}
	stop    chan struct{} // ends the running goroutine; nil when none runs
}

// add enrols i; the goroutine starts with the first member.
func (r *reporter) add(i *Interceptor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.members == nil {
		r.members = map[*Interceptor]struct{}{}
	}
	r.members[i] = struct{}{}
	if r.stop == nil {
		r.stop = make(chan struct{})
		go r.run(r.stop)
	}
}

// remove forgets i; the goroutine ends with the last member.
func (r *reporter) remove(i *Interceptor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.members, i)
	if len(r.members) == 0 && r.stop != nil {
		close(r.stop)
		r.stop = nil
	}
}

// run sends every member's reports each SenderReportInterval, until stop.
func (r *reporter) run(stop chan struct{}) {
	t := time.NewTicker(SenderReportInterval)
	defer t.Stop()
	var members []*Interceptor
	var streams []*localStream
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		members = members[:0]
		r.mu.Lock()
		for i := range r.members {
			members = append(members, i)
		}
		r.mu.Unlock()
		for _, i := range members {
			streams = i.report(streams[:0])
		}
		clear(members) // drop the references until the next tick
		clear(streams)
	}
}

// report sends the connection's sender reports, unless it closed; streams is scratch
// space, returned for reuse. Reporter goroutine.
func (i *Interceptor) report(streams []*localStream) []*localStream {
	i.sending.Lock() // Close waits for a report in progress
	defer i.sending.Unlock()
	i.mu.Lock()
	select {
	case <-i.closed:
		i.mu.Unlock()
		return streams
	default:
	}
	for _, s := range i.local {
		streams = append(streams, s)
	}
	w := i.rtcpOut
	i.mu.Unlock()
	i.sendReports(w, streams, i.now())
	return streams
}

// sendReports writes the sender report of each of streams that has sent media.
func (i *Interceptor) sendReports(w interceptor.RTCPWriter, streams []*localStream, now time.Time) {
	for _, s := range streams {
		if sr := s.report(now); sr != nil {
			// A failed write (the connection closing) loses one report; the next tick
			// sends a fresh one.
			_, _ = w.Write([]rtcp.Packet{sr}, interceptor.Attributes{})
		}
	}
}

// Egress sends a connection's RTP packets, header and payload as the interceptors leave
// them, instead of pion's SRTP session: the bridge's own SRTP (sfu/ownsrtp.go). It must
// behave as pion's writer does: (0, nil) for a packet not sent because the transport is
// not ready yet.
type Egress interface {
	WriteRTP(h *rtp.Header, payload []byte) (int, error)
}

type egressBox struct{ Egress }

// SetEgress makes e the last step of every RTP write on this connection from now on;
// nil gives them back to pion. A write in progress finishes where it started.
func (i *Interceptor) SetEgress(e Egress) {
	if e == nil {
		i.egress.Store(nil)
		return
	}
	i.egress.Store(&egressBox{e})
}
