package client

import (
	"math"
	"sync"
	"time"

	"github.com/pion/rtp"
)

// StreamStats is a snapshot of what a Stream measured on its received packets. Loss is
// counted from sequence-number gaps after the first packet (RFC 3550 §6.4.1, duplicates
// excluded); a subscriber starts at a keyframe, so what the bridge held back before that is
// not loss.
type StreamStats struct {
	// Received counts distinct packets; Duplicates the copies of packets already counted
	// (retransmissions that raced the original); Late the packets more than
	// reorderWindow sequence numbers behind the newest (not counted as received).
	Received, Duplicates, Late int64
	// Expected is the span of sequence numbers seen; Lost = Expected − Received (≥ 0).
	Expected, Lost int64
	// Resyncs counts jumps in the sequence numbers too large to be loss (a restarted
	// stream); Expected restarts its count there.
	Resyncs int64
	// JitterMs is the RFC 3550 interarrival jitter, in milliseconds.
	JitterMs float64
	// Probed counts packets that carried a Probe (all of them from a Synth).
	Probed int64
	// Frames counts video frames whose every packet arrived; FramesExpected the span of
	// frame numbers seen (from the probes).
	Frames, FramesExpected int64
	// First and Last are when the first and the latest packet arrived.
	First, Last time.Time
	// LastSent is when the newest packet received was sent (its probe's clock; zero
	// without probes): unlike Last, a packet read late from a queue does not make it
	// recent, so it says whether the sender's stream is forwarded now.
	LastSent time.Time
}

// LossFraction is Lost/Expected, 0 when nothing was expected.
func (s StreamStats) LossFraction() float64 {
	if s.Expected <= 0 {
		return 0
	}
	return float64(s.Lost) / float64(s.Expected)
}

// reorderWindow is how far behind the newest packet a packet may arrive and still be
// checked for duplication; a power of two, a multiple of 64.
const reorderWindow = 1024

// maxDropout is the largest forward jump in sequence numbers taken as loss rather than a
// restart (RFC 3550 appendix A.1 uses 3000).
const maxDropout = 3000

// frameSlots is how many recent video frames are tracked for completeness at once.
const frameSlots = 64

type frameSlot struct {
	frame uint32
	got   uint8
	used  bool
}

// rxStats is a Stream's receive accounting; the track's reader goroutine updates it and
// Stats reads it, so it has its own lock.
type rxStats struct {
	mu sync.Mutex

	clockRate float64
	started   bool
	base, max int64 // extended sequence numbers: first seen and highest seen
	prior     int64 // Expected accumulated before the last resync
	seen      [reorderWindow / 64]uint64
	received  int64
	dups      int64
	late      int64
	resyncs   int64

	// jitter (RFC 3550 §6.4.1), in RTP clock units
	lastArrival float64 // seconds since first, times clockRate
	lastTS      uint32
	jitter      float64
	first, last time.Time
	lastSent    int64 // the newest probe's SentAt (Unix ns) among the packets received

	probed                int64
	frames                int64
	firstFrame, lastFrame uint32
	haveFrame             bool
	slots                 [frameSlots]frameSlot
	latency               Histogram
}

func (r *rxStats) bit(ext int64) (word int, mask uint64) {
	i := int(uint64(ext) % reorderWindow)
	return i / 64, uint64(1) << uint(i%64)
}

// observe accounts one received packet. kind is "audio" or "video".
func (r *rxStats) observe(hdr *rtp.Header, payload []byte, kind string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.started {
		r.started = true
		r.first = now
		ext := int64(hdr.SequenceNumber)
		r.base, r.max = ext, ext
		w, m := r.bit(ext)
		r.seen[w] |= m
		r.received++
		r.lastTS = hdr.Timestamp
		r.last = now
		r.observePayload(payload, kind, now)
		return
	}
	delta := int64(int16(hdr.SequenceNumber - uint16(r.max)))
	ext := r.max + delta
	switch {
	case delta > maxDropout || delta < -maxDropout:
		// A restart: keep what was counted and start a new span here.
		r.prior += r.max - r.base + 1
		r.resyncs++
		r.base, r.max = ext, ext
		r.seen = [reorderWindow / 64]uint64{}
		w, m := r.bit(ext)
		r.seen[w] |= m
		r.received++
		r.lastArrival, r.lastTS = now.Sub(r.first).Seconds()*r.clockRate, hdr.Timestamp
	case delta > 0:
		for s := r.max + 1; s < ext && s-r.max <= reorderWindow; s++ {
			w, m := r.bit(s)
			r.seen[w] &^= m
		}
		r.max = ext
		w, m := r.bit(ext)
		r.seen[w] |= m
		r.received++
		r.jitterUpdate(hdr.Timestamp, now)
	case -delta >= reorderWindow || ext < r.base:
		r.late++
		r.last = now
		return
	default:
		w, m := r.bit(ext)
		if r.seen[w]&m != 0 {
			r.dups++
			r.last = now
			return
		}
		r.seen[w] |= m
		r.received++
	}
	r.last = now
	r.observePayload(payload, kind, now)
}

// jitterUpdate folds one in-order packet into the interarrival jitter.
func (r *rxStats) jitterUpdate(ts uint32, now time.Time) {
	arrival := now.Sub(r.first).Seconds() * r.clockRate
	d := (arrival - r.lastArrival) - float64(int32(ts-r.lastTS))
	r.jitter += (math.Abs(d) - r.jitter) / 16
	r.lastArrival, r.lastTS = arrival, ts
}

// observePayload reads the probe, if any: latency and frame completeness.
func (r *rxStats) observePayload(payload []byte, kind string, now time.Time) {
	p, ok := probeAt(kind, payload)
	if !ok {
		return
	}
	r.probed++
	r.latency.Record(now.UnixNano() - p.SentAt)
	r.lastSent = max(r.lastSent, p.SentAt)
	if kind != "video" || p.Count == 0 {
		return
	}
	if !r.haveFrame {
		r.haveFrame = true
		r.firstFrame, r.lastFrame = p.Frame, p.Frame
	} else if int32(p.Frame-r.lastFrame) > 0 {
		r.lastFrame = p.Frame
	}
	if int32(p.Frame-r.firstFrame) < 0 {
		return // older than the first frame seen
	}
	s := &r.slots[p.Frame%frameSlots]
	if !s.used || s.frame != p.Frame {
		*s = frameSlot{frame: p.Frame, used: true}
	}
	s.got++
	if s.got == p.Count {
		r.frames++
	}
}

func (r *rxStats) snapshot() StreamStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := StreamStats{Received: r.received, Duplicates: r.dups, Late: r.late, Resyncs: r.resyncs,
		Probed: r.probed, Frames: r.frames, First: r.first, Last: r.last}
	if r.lastSent != 0 {
		st.LastSent = time.Unix(0, r.lastSent)
	}
	if r.started {
		st.Expected = r.prior + r.max - r.base + 1
		if lost := st.Expected - r.received; lost > 0 {
			st.Lost = lost
		}
	}
	if r.clockRate > 0 {
		st.JitterMs = r.jitter / r.clockRate * 1000
	}
	if r.haveFrame {
		st.FramesExpected = int64(r.lastFrame-r.firstFrame) + 1
	}
	return st
}

// Stats returns what this stream has measured so far.
func (s *Stream) Stats() StreamStats { return s.rx.snapshot() }

// Latency returns a copy of the end-to-end latency histogram (nanoseconds, from the probes
// in the payloads; meaningful when sender and receiver share a clock).
func (s *Stream) Latency() Histogram {
	s.rx.mu.Lock()
	defer s.rx.mu.Unlock()
	return s.rx.latency
}

// observe is called by the track's reader for every packet.
func (s *Stream) observe(hdr *rtp.Header, payload []byte) {
	s.rx.observe(hdr, payload, s.Kind, time.Now())
}

// newStream creates a Stream for a received track.
func newStream(streamID, trackID, kind, mime string, clockRate uint32) *Stream {
	s := &Stream{StreamID: streamID, TrackID: trackID, Kind: kind, MimeType: mime, FirstAt: time.Now(), ClockRate: clockRate}
	s.rx.clockRate = float64(clockRate)
	if s.rx.clockRate == 0 {
		s.rx.clockRate = 90000
		if kind == "audio" {
			s.rx.clockRate = 48000
		}
	}
	return s
}
