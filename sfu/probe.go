package sfu

import (
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/cau-project/cau/sfu/hopstats"
)

// Probing: before a link's allocator moves a subscription up a layer beyond what the link
// has shown it carries (bwe.Estimator.Proven), it sends the difference as padding for
// probeLength and watches the link's own TWCC feedback: with little loss of the media
// meanwhile, the rate is proven and the step is taken; with loss, the step is not taken
// and the probe stops early, having cost the link a fraction of a second of queue rather
// than the seconds a layer that does not fit costs (loss until the estimate falls, then a
// keyframe of the lower layer). The padding is RTP padding on the RTX stream of one of
// the link's video tracks, as browsers probe: receivers drop it after their TWCC
// generator has counted it.

const (
	// probeLength is how long a probe sends padding: one estimator interval's worth of
	// feedback, short enough that a shaper's queue (200 ms at the link's rate) takes it.
	probeLength = 400 * time.Millisecond
	// probeLag is how long feedback on the probe's last packets may take (RTT, a queue
	// and the far end's feedback interval).
	probeLag = 500 * time.Millisecond
	// probeTick paces the padding; probeCheck is how often the loss is looked at while
	// sending (in ticks).
	probeTick  = 10 * time.Millisecond
	probeCheck = 5
	// paddingSize is one padding packet's padding (RTP padding's length is one byte).
	paddingSize = 255
	// probeAbortLost and probeAbortShare stop a probe early: that many media packets lost,
	// and that share of those reported.
	probeAbortLost  = 3
	probeAbortShare = 0.03
	// probeDelay is the growth of the path's queue (hopstats.Direction.QueueDelay) that
	// fails a probe: the link did not carry the rate, a queue took the excess. A shaper
	// queues long before it drops (tbf: 200 ms), so a short probe over capacity may lose
	// nothing. Above the jitter of a loaded machine, below what 400 ms at a quarter over
	// capacity queues (100 ms).
	probeDelay = 50 * time.Millisecond
)

// probe is one probe of a link. The prober's goroutine writes the result, then sets done;
// the allocator reads the result once done is set.
type probe struct {
	target  float64 // bit/s
	started time.Time
	done    atomic.Bool
	// rate is what the link sent during the probe (media and padding, bit/s on the wire),
	// loss the share of the media the far end reported lost from the probe's start until
	// probeLag after its end; aborted: it stopped early for loss, or could not send.
	rate, loss float64
	aborted    bool
	queued     time.Duration // the most the path's queue grew during the probe
}

// paddingTrack is a video DownTrack of the peer (or a video slot's padding track) that
// negotiated RTX and is bound, to carry a probe's padding; nil if none.
func (p *Peer) paddingTrack() *DownTrack {
	p.mu.Lock()
	defer p.mu.Unlock()
	for d := range p.downs {
		if b := d.binding.Load(); b != nil && b.rtxSSRC != 0 {
			return d
		}
	}
	for s := range p.slots { // a subscriber in slots: a video slot's (slot.go)
		if s.pad != nil {
			if b := s.pad.binding.Load(); b != nil && b.rtxSSRC != 0 {
				return s.pad
			}
		}
	}
	return nil
}

// startProbe starts probing the link at target bit/s while it carries current; nil when
// it cannot (no track to carry padding, no hop measurement).
func (a *allocator) startProbe(target, current float64, now time.Time) *probe {
	d := a.p.paddingTrack()
	hop := a.p.subHop
	if d == nil || hop == nil || target <= current {
		return nil
	}
	pr := &probe{target: target, started: now}
	go pr.run(hop, d, target-current, a.quit)
	return pr
}

// run sends padding at pad bit/s for probeLength, then waits for the feedback and
// records the result. Its own goroutine; quit ends it early (the link closes).
func (pr *probe) run(hop *hopstats.Interceptor, d *DownTrack, pad float64, quit <-chan struct{}) {
	defer pr.done.Store(true)
	start := time.Now()
	s0 := hop.Stats().Out
	perSecond := pad / 8 / float64(paddingSize+rtpOverhead) // packets
	var hdr rtp.Header
	tick := time.NewTicker(probeTick)
	defer tick.Stop()
	sent := 0
	for n := 1; ; n++ {
		select {
		case <-quit:
			pr.aborted = true
			return
		case <-tick.C:
		}
		elapsed := time.Since(start)
		if elapsed >= probeLength {
			break
		}
		// By the time elapsed, not by ticks: a loaded machine delays and drops ticks.
		for due := int(perSecond * elapsed.Seconds()); sent < due; sent++ {
			if !d.sendPadding(&hdr) {
				pr.aborted = true
				return
			}
		}
		if n%probeCheck == 0 && pr.overrun(hop.Stats().Out, s0) {
			break
		}
	}
	end := hop.Stats().Out
	if dt := time.Since(start).Seconds(); dt > 0 {
		pr.rate = float64((end.Bytes-s0.Bytes)+(end.Packets-s0.Packets)*rtpOverhead) * 8 / dt
	}
	// The feedback on the last packets: the queue they met, the loss.
	wait := time.NewTicker(probeCheck * probeTick)
	defer wait.Stop()
	for until := time.Now().Add(probeLag); time.Now().Before(until); {
		select {
		case <-quit:
			pr.aborted = true
			return
		case <-wait.C:
		}
		pr.overrun(hop.Stats().Out, s0)
	}
	o := hop.Stats().Out
	pr.overrun(o, s0)
	if reported := o.Reported - s0.Reported; reported > 0 {
		pr.loss = float64(o.Lost-s0.Lost) / float64(reported)
	}
}

// overrun says whether the link shows, since s0, that it does not carry the probe: the
// media lost, or the queue grown by probeDelay; it marks the probe aborted then.
func (pr *probe) overrun(o, s0 hopstats.Direction) bool {
	pr.queued = max(pr.queued, o.QueueDelay-s0.QueueDelay)
	lost, reported := o.Lost-s0.Lost, o.Reported-s0.Reported
	if (lost >= probeAbortLost && float64(lost) > probeAbortShare*float64(reported)) || pr.queued > probeDelay {
		pr.aborted = true
	}
	return pr.aborted
}

// result is the probe's outcome once done: the rate it reached and the loss (an aborted
// probe reports a loss of 1).
func (pr *probe) result() (rate, loss float64) {
	if pr.aborted {
		return pr.rate, 1
	}
	return pr.rate, pr.loss
}

// sendPadding sends one packet of padding only on the track's RTX stream, numbered on
// with its retransmissions. The prober's goroutine; h is its own scratch header.
func (d *DownTrack) sendPadding(h *rtp.Header) bool {
	b := d.binding.Load()
	if b == nil || b.rtxSSRC == 0 || !d.sub.subConnected.Load() {
		return false
	}
	h.Version, h.Marker = 2, false
	h.Padding, h.PaddingSize = true, paddingSize
	h.PayloadType, h.SSRC = b.rtxPT, b.rtxSSRC
	h.SequenceNumber = uint16(d.rtxSeq.Add(1) - 1)
	h.Timestamp = 0
	h.CSRC = h.CSRC[:0]
	h.Extension, h.Extensions = false, h.Extensions[:0] // the interceptors add theirs (TWCC)
	_, err := b.writer.WriteRTP(h, nil)
	return err == nil
}
