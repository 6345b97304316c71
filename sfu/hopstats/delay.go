package hopstats

import (
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
)

// Queue delay of the out direction: the far end's TWCC feedback says when each packet
// arrived (on its clock), this side knows when it sent it (on its own): their difference
// is the one-way delay plus an unknown constant, so only its changes mean anything. The
// least such delay over the last two DelayPeriods is the path with empty queues; what a
// feedback reports above it is the queue on the path now. A shaper's queue (tbf) grows
// long before it drops: this is how a probe that overruns a link is told from one that
// fits, while the queue still absorbs it.

// DelayPeriod is the period of the delay baseline (two periods are kept).
const DelayPeriod = 5 * time.Second

// sentTimes is the send time of each recent packet by TWCC sequence number mod sentSeqs,
// as 16 bits of sentTick units, two to a word: 4 KiB (issue 11). A feedback comes within
// a second of the send, so the time is unwrapped against the feedback's arrival (sentAt),
// valid within 8 s either way. The unit is the feedback's own resolution; the time is
// rounded down to it, a constant offset on average that the baseline takes out. 0 means
// none (a time that falls on 0 is kept as 1, a tick late).
type sentTimes [sentSeqs / 2]atomic.Uint32

// sentSeqs is how many recent sequence numbers sentTimes covers: the packets sent while
// one waits for its feedback (a feedback interval, the round trip and the queue): 3.3 s
// of a 6 Mbps connection's 1,200-byte packets, 10 s of 2 Mbps. It was seqBits (4,096): 4
// KiB more on every sending connection, the larger of hopstats' pieces per subscriber.
// A feedback older than that finds a newer packet's time and is read as less delay.
const sentSeqs = 1 << 11

// sentTick is the unit of a stored send time, in µs (TWCC's receive delta unit).
const sentTick = 250

// store records the send time of seq, at (unix µs). Any goroutine: the two halves of a
// word are set apart, and a reader between the two steps sees none.
func (s *sentTimes) store(seq uint16, at int64) {
	v := uint32(uint16(at / sentTick))
	if v == 0 {
		v = 1
	}
	w, shift := &s[int(seq)%sentSeqs/2], 16*(uint(seq)&1)
	w.And(^(uint32(0xFFFF) << shift))
	w.Or(v << shift)
}

// load is seq's stored send time (0: none).
func (s *sentTimes) load(seq uint16) uint16 {
	return uint16(s[int(seq)%sentSeqs/2].Load() >> (16 * (uint(seq) & 1)))
}

// sentAt unwraps a stored send time against now (unix µs): the send time in unix µs,
// rounded down to sentTick.
func sentAt(stored uint16, now int64) int64 {
	ticks := now / sentTick
	return (ticks - int64(int16(uint16(ticks)-stored))) * sentTick
}

// delays is the out direction's delay state. sent is written by the sending goroutines
// (atomics); the rest is guarded by Interceptor.mu.
type delays struct {
	// sent is allocated by the first packet sent: most connections of a meeting send no
	// media on one of their two sides (a publisher's subscriber connection while it is
	// alone, a relay link's receiving end), and 32 KiB (int64s then) per idle side was
	// the largest piece of heap per endpoint (issue 11).
	sent      atomic.Pointer[sentTimes]
	base      [2]int64  // least delay (µs) of the current and previous period
	baseSince time.Time // start of the current period
	have      bool
	queue     time.Duration // the last feedback's mean delay above the baseline
}

// noteSent records when the packet numbered seq left. Any goroutine; it allocates only
// the first time.
func (d *delays) noteSent(seq uint16, at time.Time) {
	s := d.sent.Load()
	if s == nil {
		d.sent.CompareAndSwap(nil, &sentTimes{})
		s = d.sent.Load()
	}
	s.store(seq, at.UnixMicro())
}

// add reads one feedback's arrival times. Caller holds Interceptor.mu.
func (d *delays) add(fb *rtcp.TransportLayerCC, now time.Time) {
	times := d.sent.Load()
	if times == nil {
		return // nothing sent yet: nothing to compare with
	}
	arrival := int64(fb.ReferenceTime) * 64_000 // µs on the far end's clock
	nowUS := now.UnixMicro()
	seq, left, deltas := fb.BaseSequenceNumber, int(fb.PacketStatusCount), fb.RecvDeltas
	var sum, n int64
	status := func(sym uint16, count int) {
		for ; count > 0 && left > 0; count, left, seq = count-1, left-1, seq+1 {
			if sym == rtcp.TypeTCCPacketNotReceived || len(deltas) == 0 {
				continue
			}
			arrival += deltas[0].Delta
			deltas = deltas[1:]
			if sent := times.load(seq); sent != 0 {
				sum += arrival - sentAt(sent, nowUS)
				n++
			}
		}
	}
	for _, c := range fb.PacketChunks {
		switch c := c.(type) {
		case *rtcp.RunLengthChunk:
			status(c.PacketStatusSymbol, int(c.RunLength))
		case *rtcp.StatusVectorChunk:
			for _, s := range c.SymbolList {
				status(s, 1)
			}
		}
	}
	if n == 0 {
		return
	}
	mean := sum / n
	switch span := now.Sub(d.baseSince); {
	case !d.have || span >= 2*DelayPeriod:
		d.base = [2]int64{mean, mean}
		d.baseSince, d.have = now, true
	case span >= DelayPeriod:
		d.base[1], d.base[0] = d.base[0], mean
		d.baseSince = d.baseSince.Add(DelayPeriod)
	}
	d.base[0] = min(d.base[0], mean)
	d.queue = time.Duration(mean-min(d.base[0], d.base[1])) * time.Microsecond
}
