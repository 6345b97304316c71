package sfu

import (
	"errors"
	"sync/atomic"
	"time"
)

// TapPacketSize is the largest packet a tap copies; longer ones (none on a 1500-byte MTU
// path after SRTP) are counted as dropped.
const TapPacketSize = 1500

// TapPacket is one packet a Tap copied from its track: an RTP packet, or (RTCP set) an
// RTCP compound packet from the publisher, such as its sender reports. It belongs to the
// consumer until it gives it back with Release.
type TapPacket struct {
	// Tap is the tap that copied it, so that one consumer can serve several taps through
	// one channel.
	Tap *Tap
	// At is when the bridge read it.
	At time.Time
	// RTCP says Data is RTCP rather than RTP.
	RTCP bool
	n    int
	buf  [TapPacketSize]byte
}

// Data is the packet as received (after SRTP), header included.
func (p *TapPacket) Data() []byte { return p.buf[:p.n] }

// Release gives the packet back to its tap's pool; p must not be used afterwards.
func (p *TapPacket) Release() {
	select {
	case p.Tap.free <- p:
	default: // cannot happen: the pool holds exactly the packets it made
	}
}

// Tap is a local, in-process subscriber of an UpTrack (the recorder): it receives a copy
// of every RTP packet of the track and of the publisher's RTCP, without the reader ever
// waiting for it. Copies come from a pool of fixed size; when the consumer falls behind
// (a slow disk) and the pool is empty, packets are dropped and counted, and forwarding to
// the other subscribers goes on unaffected.
type Tap struct {
	up   *UpTrack
	free chan *TapPacket   // the pool: packets the consumer gave back
	out  chan<- *TapPacket // the consumer's queue; never closed by the tap

	dropped   atomic.Uint64
	delivered atomic.Uint64
}

// ErrTapQueue is returned by NewTap when out cannot hold the whole pool, which would let
// the track's reader block on it.
var ErrTapQueue = errors.New("sfu: tap queue smaller than its pool")

// NewTap subscribes a local consumer to the track: copies of its packets are sent on out,
// from a pool of depth packets (depth × 1.5 kB). out may be shared by several taps, but its
// capacity must be at least the sum of their depths so that a send never blocks. Video
// taps ask the publisher for a keyframe at once. The tap ends by Close, or when the track
// ends (Done). A simulcast source is tapped at its highest layer present (a recording
// keeps the best picture); Track says which.
func (t *UpTrack) NewTap(depth int, out chan<- *TapPacket) (*Tap, error) {
	if depth <= 0 || cap(out) < depth {
		return nil, ErrTapQueue
	}
	if t.sim != nil {
		t = t.sim.top()
	}
	tp := &Tap{up: t, free: make(chan *TapPacket, depth), out: out}
	for range depth {
		tp.free <- &TapPacket{Tap: tp}
	}
	t.mu.Lock()
	select {
	case <-t.done:
		t.mu.Unlock()
		return nil, ErrClosed
	default:
	}
	next := withAdded(*t.taps.Load(), tp)
	t.taps.Store(&next)
	t.mu.Unlock()
	t.RequestKeyframe()
	return tp, nil
}

// Track is the tapped track.
func (tp *Tap) Track() *UpTrack { return tp.up }

// Done is closed when the tapped track ends.
func (tp *Tap) Done() <-chan struct{} { return tp.up.done }

// Dropped counts packets the tap could not copy because its pool was empty.
func (tp *Tap) Dropped() uint64 { return tp.dropped.Load() }

// Delivered counts packets sent to the consumer.
func (tp *Tap) Delivered() uint64 { return tp.delivered.Load() }

// Close unsubscribes the tap; packets already queued stay valid until released. Safe
// to call more than once.
func (tp *Tap) Close() {
	t := tp.up
	t.mu.Lock()
	defer t.mu.Unlock()
	next := without(*t.taps.Load(), tp)
	t.taps.Store(&next)
}

// deliver copies pkt to the consumer if the pool has a free packet. Called by the track's
// reader (RTP) or its RTCP goroutine; never blocks and allocates nothing.
func (tp *Tap) deliver(pkt []byte, at time.Time, isRTCP bool) {
	if len(pkt) > TapPacketSize {
		tp.dropped.Add(1)
		return
	}
	var p *TapPacket
	select {
	case p = <-tp.free:
	default:
		tp.dropped.Add(1)
		return
	}
	p.n = copy(p.buf[:], pkt)
	p.At, p.RTCP = at, isRTCP
	select {
	case tp.out <- p:
		tp.delivered.Add(1)
	default: // out is shared and smaller than promised: give the packet back
		tp.free <- p
		tp.dropped.Add(1)
	}
}

// deliverTaps hands pkt to every tap of the track; one atomic load when there is none.
// A track built without taps (as the forwarding tests build them) has a nil snapshot.
func (t *UpTrack) deliverTaps(pkt []byte, at time.Time, isRTCP bool) {
	taps := t.taps.Load()
	if taps == nil {
		return
	}
	for _, tp := range *taps {
		tp.deliver(pkt, at, isRTCP)
	}
}
