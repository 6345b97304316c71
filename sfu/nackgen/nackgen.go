// Package nackgen asks a sender to retransmit the video packets a peer connection did not
// receive (RFC 4585 generic NACK). It replaces pion's generator, which does not see
// packets repaired over an RTX stream (RFC 4588): pion unwraps them after the
// interceptors, so its generator keeps NACKing a packet that already arrived, every
// interval, until the packet leaves its window. Over a lossy relay link that spends the
// sender's whole retransmission budget on packets already repaired, and new losses go
// unrepaired (issue 11, TestWANRelayLink).
//
// This generator reads the original sequence number out of every RTX packet, paces its
// retries by the round trip it measures from its own NACKs, and gives a packet up after
// a few tries, so one lost retransmission costs one more NACK, not a stream of them.
package nackgen

import (
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
)

// Defaults for a Factory's zero fields.
const (
	// DefaultInterval is how often missing packets are looked at. A gap waits at least
	// one interval before its first NACK, so a packet merely reordered is not asked for.
	DefaultInterval = 20 * time.Millisecond
	// DefaultMaxNACKs is how many times one packet is asked for before it is given up.
	DefaultMaxNACKs = 8
	// DefaultWindow is how far behind the newest packet a missing one is still asked for.
	DefaultWindow = 512
	// maxMissing bounds the packets a stream remembers as missing: a burst larger than
	// this (an outage, not loss) is left to a keyframe request.
	maxMissing = 256
	// initialRTT is the round trip assumed until a repaired packet measures one.
	initialRTT = 100 * time.Millisecond
	minRetry   = 40 * time.Millisecond
	maxRetry   = time.Second
)

// Factory makes a Generator per peer connection. Zero fields take the defaults.
type Factory struct {
	Interval time.Duration
	MaxNACKs int
	Window   uint16
}

// NewInterceptor implements interceptor.Factory.
func (f Factory) NewInterceptor(string) (interceptor.Interceptor, error) {
	g := &Generator{
		interval: f.Interval,
		maxNACKs: f.MaxNACKs,
		window:   f.Window,
		streams:  map[uint32]*stream{},
		byRTX:    map[uint32]*stream{},
		close:    make(chan struct{}),
	}
	if g.interval <= 0 {
		g.interval = DefaultInterval
	}
	if g.maxNACKs <= 0 {
		g.maxNACKs = DefaultMaxNACKs
	}
	if g.window == 0 {
		g.window = DefaultWindow
	}
	return g, nil
}

// Generator is the NACK generator of one peer connection.
type Generator struct {
	interceptor.NoOp
	interval time.Duration
	maxNACKs int
	window   uint16

	mu      sync.Mutex         // guards streams, byRTX, writer and started
	streams map[uint32]*stream // by media SSRC
	byRTX   map[uint32]*stream // by the SSRC of the media stream's RTX stream
	writer  interceptor.RTCPWriter
	started bool

	close     chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// missing is one packet not yet received.
type missing struct {
	seq      uint16
	since    time.Time // when the gap was seen
	lastNACK time.Time // zero until asked for
	nacks    int
}

// stream is one received media stream. The track's reader goroutine adds packets; the
// generator's loop reads and ages the missing list; mu guards all but ssrc.
type stream struct {
	ssrc    uint32
	mu      sync.Mutex
	started bool
	highest uint16
	missing []missing // in sequence order, at most maxMissing
	rtt     time.Duration
}

// BindRTCPWriter implements interceptor.Interceptor: the generator's loop starts once the
// connection has both its RTCP writer and a stream to watch.
func (g *Generator) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.writer = w
	g.startLocked()
	return w
}

// startLocked starts the loop when there is something for it to do. A connection that
// receives no video (every subscriber connection, and an audio-only publisher's) never
// ticks: with a ticker per connection, a 1 × 300 meeting's 600 idle connections woke the
// bridge 30,000 times a second (8% of its CPU in the profile). Caller holds g.mu.
func (g *Generator) startLocked() {
	if g.started || g.writer == nil || len(g.streams) == 0 {
		return
	}
	select {
	case <-g.close:
		return // closed before it had anything to watch
	default:
	}
	g.started = true
	g.wg.Add(1)
	go g.loop(g.writer)
}

// BindRemoteStream implements interceptor.Interceptor. A video stream that negotiated
// NACK is watched for gaps; an RTX stream marks the packets it carries as received.
func (g *Generator) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	if strings.EqualFold(info.MimeType, "video/rtx") {
		return g.bindRTX(info.SSRC, r)
	}
	if !wantsNACK(info) {
		return r
	}
	s := &stream{ssrc: info.SSRC, rtt: initialRTT, missing: make([]missing, 0, 16)}
	g.mu.Lock()
	g.streams[info.SSRC] = s
	if info.SSRCRetransmission != 0 {
		g.byRTX[info.SSRCRetransmission] = s
	}
	g.startLocked()
	g.mu.Unlock()
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err != nil {
			return n, a, err
		}
		if n >= 4 {
			s.received(binary.BigEndian.Uint16(b[2:4]), false, g.window, time.Now())
		}
		return n, a, nil
	})
}

// bindRTX wraps an RTX stream's reader. The media stream is looked up per packet, not
// at bind time: pion may bind a repair stream before the stream it repairs, and when it
// learns the pair from the MID and repair-stream-id header extensions rather than the
// SDP, the media stream's info never names its repair stream. Then the pair is learnt
// from the repairs themselves (see learnRTX).
func (g *Generator) bindRTX(rtxSSRC uint32, r interceptor.RTPReader) interceptor.RTPReader {
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err != nil {
			return n, a, err
		}
		if osn, ok := originalSeq(b[:n]); ok {
			g.mu.Lock()
			s := g.byRTX[rtxSSRC]
			if s == nil {
				s = g.learnRTX(rtxSSRC, osn)
			}
			g.mu.Unlock()
			if s != nil {
				s.received(osn, true, g.window, time.Now())
			}
		}
		return n, a, nil
	})
}

// learnRTX pairs an RTX stream with the one media stream that asked for the packet it
// carries. If several did (sequence numbers are random per stream, so rarely), it waits
// for a repair that only one asked for. Called with g.mu held; RTX packets are few (one
// per lost packet), so the scan costs little.
func (g *Generator) learnRTX(rtxSSRC uint32, osn uint16) *stream {
	var match *stream
	for _, s := range g.streams {
		if s.asked(osn) {
			if match != nil {
				return nil
			}
			match = s
		}
	}
	if match != nil {
		g.byRTX[rtxSSRC] = match
	}
	return match
}

// asked reports whether seq is missing and was NACKed.
func (s *stream) asked(seq uint16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.missing {
		if m.seq == seq {
			return m.nacks > 0
		}
	}
	return false
}

// UnbindRemoteStream implements interceptor.Interceptor.
func (g *Generator) UnbindRemoteStream(info *interceptor.StreamInfo) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s, ok := g.streams[info.SSRC]; ok {
		delete(g.streams, info.SSRC)
		for rtx, m := range g.byRTX {
			if m == s {
				delete(g.byRTX, rtx)
			}
		}
	}
}

// Close implements interceptor.Interceptor.
func (g *Generator) Close() error {
	g.mu.Lock() // orders the close against startLocked's wg.Add
	g.closeOnce.Do(func() { close(g.close) })
	g.mu.Unlock()
	g.wg.Wait()
	return nil
}

func wantsNACK(info *interceptor.StreamInfo) bool {
	for _, fb := range info.RTCPFeedback {
		if fb.Type == "nack" && fb.Parameter == "" {
			return true
		}
	}
	return false
}

// originalSeq is the sequence number an RTX packet repairs (RFC 4588 §4: the first two
// bytes of its payload). Padding-only RTX packets (bandwidth probes) carry none.
func originalSeq(b []byte) (uint16, bool) {
	if len(b) < 12 || b[0]>>6 != 2 {
		return 0, false
	}
	off := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 { // header extension: 4-byte header, then its length in words
		if len(b) < off+4 {
			return 0, false
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(b[off+2:off+4]))
	}
	end := len(b)
	if b[0]&0x20 != 0 { // padding: its count is the last byte
		end -= int(b[len(b)-1])
	}
	if end-off < 2 {
		return 0, false
	}
	return binary.BigEndian.Uint16(b[off : off+2]), true
}

// received records packet seq; repaired says it came over RTX.
func (s *stream) received(seq uint16, repaired bool, window uint16, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		if repaired {
			return // a repair before any media: nothing to measure against
		}
		s.started, s.highest = true, seq
		return
	}
	ahead := int16(seq - s.highest)
	if ahead > 0 {
		gap := uint16(ahead) - 1
		if gap >= window {
			// A jump larger than the window (a restart, a long outage): nothing in it is
			// worth asking for.
			s.missing = s.missing[:0]
		} else {
			q := s.highest + 1
			if gap > maxMissing {
				s.missing, q = s.missing[:0], seq-maxMissing
			}
			for ; q != seq; q++ {
				if len(s.missing) == maxMissing {
					copy(s.missing, s.missing[1:])
					s.missing = s.missing[:maxMissing-1]
				}
				s.missing = append(s.missing, missing{seq: q, since: now})
			}
		}
		s.highest = seq
		return
	}
	// An old packet: a retransmission or a reordered one. If it was missing, it no longer
	// is; if it was asked for exactly once, its round trip is a clean RTT sample.
	for i := range s.missing {
		m := &s.missing[i]
		if m.seq != seq {
			continue
		}
		if m.nacks == 1 {
			s.observeRTT(now.Sub(m.lastNACK))
		}
		s.missing = append(s.missing[:i], s.missing[i+1:]...)
		return
	}
}

// observeRTT folds one sample into the smoothed round trip (RFC 6298's 1/8 gain).
func (s *stream) observeRTT(sample time.Duration) {
	if sample <= 0 {
		return
	}
	s.rtt += (sample - s.rtt) / 8
}

// retryAfter is how long to wait for a NACKed packet before asking again: a round trip
// and a margin for the sender's pacing.
func (s *stream) retryAfter() time.Duration {
	return min(max(s.rtt+s.rtt/4+20*time.Millisecond, minRetry), maxRetry)
}

// due appends to seqs the packets to ask for now, and forgets those given up.
func (s *stream) due(now time.Time, interval time.Duration, maxNACKs int, window uint16, seqs []uint16) []uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	retry := s.retryAfter()
	keep := s.missing[:0]
	for _, m := range s.missing {
		if uint16(s.highest-m.seq) >= window || m.nacks >= maxNACKs {
			continue // too old for the sender's cache, or asked for enough
		}
		switch {
		case m.nacks == 0 && now.Sub(m.since) >= interval/2:
			fallthrough
		case m.nacks > 0 && now.Sub(m.lastNACK) >= retry:
			m.nacks++
			m.lastNACK = now
			seqs = append(seqs, m.seq)
		}
		keep = append(keep, m)
	}
	s.missing = keep
	return seqs
}

// loop sends the NACKs due, every interval, until Close.
func (g *Generator) loop(w interceptor.RTCPWriter) {
	defer g.wg.Done()
	sender := rand.Uint32()
	t := time.NewTicker(g.interval)
	defer t.Stop()
	var streams []*stream
	seqs := make([]uint16, 0, maxMissing)
	for {
		select {
		case <-g.close:
			return
		case now := <-t.C:
			streams = streams[:0]
			g.mu.Lock()
			for _, s := range g.streams {
				streams = append(streams, s)
			}
			g.mu.Unlock()
			for _, s := range streams {
				seqs = s.due(now, g.interval, g.maxNACKs, g.window, seqs[:0])
				if len(seqs) == 0 {
					continue
				}
				nack := &rtcp.TransportLayerNack{SenderSSRC: sender, MediaSSRC: s.ssrc,
					Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)}
				// A failed write (the connection closing) loses one NACK; the next tick
				// asks again if the connection is still there.
				_, _ = w.Write([]rtcp.Packet{nack}, nil)
			}
		}
	}
}
