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

// sentTimes is the send time of each recent packet by TWCC sequence number mod seqBits,
// as the low 32 bits of its unix µs (16 KiB, half of whole int64s): a feedback comes
// within seconds of the send, so the time is unwrapped against the feedback's arrival
// (sentAt), valid within 35 minutes either way. 0 means none.
type sentTimes [seqBits]atomic.Uint32

// sentAt unwraps a stored send time against now: the send time in unix µs.
func sentAt(stored uint32, now int64) int64 { return now - int64(int32(uint32(now)-stored)) }

// delays is the out direction's delay state. sent is written by the sending goroutines
// (atomics); the rest is guarded by Interceptor.mu.
type delays struct {
	// sent is allocated by the first packet sent: most connections of a meeting send no
	// media on one of their two sides (a subscriber's publisher connection, a publisher's
	// subscriber one while it is alone), and 32 KiB (int64s then) per idle side was the
	// largest piece of heap per endpoint (issue 11).
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
	s[int(seq)%seqBits].Store(uint32(at.UnixMicro()))
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
			if sent := times[int(seq)%seqBits].Load(); sent != 0 {
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
