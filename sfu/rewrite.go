package sfu

import "time"

// layerRewriter maps the packets of a simulcast source's layers onto one subscriber
// stream: one SSRC (the binding's), one continuous sequence number space and one
// timeline, whichever layer is forwarded. It switches layers only at a keyframe of the
// target layer, so the subscriber's decoder never sees a delta frame of a layer it has not
// started. Within a layer the offsets are fixed, as in DownTrack.writeRTP: a gap upstream
// stays a gap the subscriber can NACK. Owned by downLayers.mu.
type layerRewriter struct {
	started    bool
	cur        int8 // the layer forwarded now
	firstInSeq uint16
	seqOffset  uint16
	tsOffset   uint32
	// The newest packet sent (subscriber numbering) and when it was read: a switch
	// continues from it, with the real time that passed added to the timestamp.
	lastSeq uint16
	lastTS  uint32
	lastAt  time.Time
	// resume is set while forwarding stopped (the link needs the source no more): the
	// next packet forwarded is a switch, at a keyframe, even to the layer it left.
	resume bool
	// clockRate is the codec's RTP clock (90 kHz for video).
	clockRate uint32
}

// rewriteResult is what the rewriter decided about one packet.
type rewriteResult uint8

const (
	rewriteForward  rewriteResult = iota // send it, with the returned numbering
	rewriteSwitched                      // send it: it starts the target layer
	rewriteWait                          // a packet of the target layer, but no keyframe yet
	rewriteDrop                          // not the layer forwarded, or older than its start
)

// rewrite decides about a packet of layer with seq and ts, read at, while target is the
// layer wanted; it returns the subscriber's sequence number and timestamp to send with.
// seed gives the random starting points for the first packet (RFC 3550 §5.1).
func (r *layerRewriter) rewrite(layer int8, seq uint16, ts uint32, keyframe bool, target int8, at time.Time,
	seed func() (uint16, uint32),
) (uint16, uint32, rewriteResult) {
	res := rewriteForward
	switch {
	case !r.started:
		if layer != target {
			return 0, 0, rewriteDrop
		}
		if !keyframe {
			return 0, 0, rewriteWait
		}
		s, t := seed()
		r.started, r.cur, r.resume = true, layer, false
		r.firstInSeq, r.seqOffset, r.tsOffset = seq, s-seq, t-ts
		r.lastSeq, r.lastTS = s-1, t
		res = rewriteSwitched
	case layer == r.cur && !r.resume:
		if int16(seq-r.firstInSeq) < 0 {
			return 0, 0, rewriteDrop // from before this layer's start here
		}
		if seq-r.firstInSeq >= seqAdvance { // keep "older than the start" decidable (downtrack.go)
			r.firstInSeq = seq - seqKeep
		}
	case layer == target:
		if !keyframe {
			return 0, 0, rewriteWait
		}
		// Continue the numbering from the last packet sent, and the timeline from its
		// time plus the real time that passed (at least one tick: a new frame).
		elapsed := uint32(0)
		if d := at.Sub(r.lastAt); d > 0 {
			elapsed = uint32(d.Microseconds() * int64(r.clockRate) / 1e6)
		}
		r.cur, r.firstInSeq, r.resume = layer, seq, false
		r.seqOffset = r.lastSeq + 1 - seq
		r.tsOffset = r.lastTS + max(elapsed, 1) - ts
		res = rewriteSwitched
	default:
		return 0, 0, rewriteDrop
	}
	outSeq, outTS := seq+r.seqOffset, ts+r.tsOffset
	if int16(outSeq-r.lastSeq) > 0 || res == rewriteSwitched {
		r.lastSeq, r.lastTS, r.lastAt = outSeq, outTS, at
	}
	return outSeq, outTS, res
}

// skipped closes the numbering over n packets of layer that were not forwarded (a Last-N
// pause or an overload skip ended at seq): the subscriber would NACK the gap for frames
// it no longer needs.
func (r *layerRewriter) skipped(layer int8, seq uint16, n uint16) {
	if r.started && layer == r.cur {
		r.seqOffset -= n
		r.firstInSeq = seq
	}
}
