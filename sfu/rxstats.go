package sfu

import (
	"sync/atomic"
	"time"
)

// rxStats measures what arrives on an up track: loss from sequence-number gaps and
// RFC 3550 interarrival jitter. The reader goroutine updates it; the published fields are
// atomics so monitoring reads them without a lock. Cost: a clock read and a few integer
// operations per packet, no allocation.
type rxStats struct {
	// reader goroutine only
	started     bool
	baseSeq     int64 // extended sequence number of the first packet
	maxSeq      int64 // highest extended sequence number seen
	cycles      int64
	lastSeq     uint16
	transit     int64 // previous packet's arrival − timestamp, in RTP units
	jitterQ4    int64 // jitter × 16 (RFC 3550 A.8 integer form)
	clockPerSec int64

	expected atomic.Int64 // maxSeq − baseSeq + 1
	jitter   atomic.Int64 // RTP units
	lastNano atomic.Int64 // arrival of the latest packet, unix nanos
}

func (r *rxStats) observe(seq uint16, ts uint32, now time.Time) {
	nano := now.UnixNano()
	r.lastNano.Store(nano)
	if !r.started {
		r.started = true
		r.baseSeq, r.maxSeq, r.lastSeq = int64(seq), int64(seq), seq
		r.transit = nano*r.clockPerSec/1e9 - int64(ts)
		r.expected.Store(1)
		return
	}
	ext := r.cycles + int64(seq)
	switch {
	case seq < 0x1000 && r.lastSeq > 0xf000: // wrapped forward
		r.cycles += 1 << 16
		ext += 1 << 16
	case seq > 0xf000 && r.lastSeq < 0x1000 && r.cycles > 0: // late, from before the wrap
		ext -= 1 << 16
	}
	if ext <= r.maxSeq {
		return // late: a retransmission or a reordered packet; its delay is not jitter
	}
	r.maxSeq = ext
	r.lastSeq = seq
	r.expected.Store(r.maxSeq - r.baseSeq + 1)
	transit := nano*r.clockPerSec/1e9 - int64(ts)
	d := transit - r.transit
	r.transit = transit
	if d < 0 {
		d = -d
	}
	r.jitterQ4 += d - (r.jitterQ4+8)>>4
	r.jitter.Store(r.jitterQ4 >> 4)
}

// ReceiveStats are an up track's reception figures.
type ReceiveStats struct {
	Packets  uint64
	Bytes    uint64
	Expected int64         // from the sequence numbers seen
	Lost     int64         // Expected − Packets, never negative
	Jitter   time.Duration // RFC 3550 interarrival jitter
	// LastPacket is when the latest packet arrived (zero before the first).
	LastPacket time.Time
}

// ReceiveStats returns the track's reception figures so far.
func (t *UpTrack) ReceiveStats() ReceiveStats {
	s := ReceiveStats{Packets: t.packets.Load(), Bytes: t.bytes.Load(), Expected: t.rx.expected.Load()}
	if s.Lost = s.Expected - int64(s.Packets); s.Lost < 0 {
		s.Lost = 0 // duplicates (a retransmission that raced its original)
	}
	if t.rx.clockPerSec > 0 {
		s.Jitter = time.Duration(t.rx.jitter.Load() * int64(time.Second) / t.rx.clockPerSec)
	}
	if n := t.rx.lastNano.Load(); n != 0 {
		s.LastPacket = time.Unix(0, n)
	}
	return s
}
