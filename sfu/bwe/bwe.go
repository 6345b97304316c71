// Package bwe estimates the bandwidth of one link the bridge sends on (a subscriber's
// connection or a relay link) and shares it out between the simulcast streams that cross
// it, one layer each.
//
// The estimate is send-side and loss-based, from the link's own TWCC feedback (the
// hopstats counters: what this side sent, and how much of it the far end reported lost),
// in the manner of GCC's loss-based controller: above 10 % loss the estimate falls by half
// the loss, below 2 % it grows by 12 % a second, in between it holds. Two of
// the known weaknesses of pion's gcc are closed here: growth is bounded by what the
// allocator could use (Want), so an idle link's estimate does not grow without bound;
// and a step up that brought loss is not retried at once: the rate that crossed then
// becomes a ceiling for a back-off period that doubles with each failure (up to MaxBackoff) and
// resets once a rate holds for a while.
//
// Delay: a shaper (tbf, a commune's router) queues before it drops, and its queue holds a
// few hundred milliseconds, so loss comes late, once the queue is full and the picture is
// already breaking. The feedback's queue delay (hopstats QueueDelay) comes first: a queue
// of QueueHigh or more while the far end acknowledges clearly less than was sent is
// overuse (once it has lasted queueHold: a keyframe's burst on a fast link queues for a
// moment; NoteQueue lets the caller look between Updates), and the estimate falls to
// GCC's 0.85 of what crossed at once.
//
// Probing: the estimate grows blindly (nothing is sent at the rate it claims), so a step
// up is first tried with padding (the caller's prober) and taken only once the link has
// carried the new rate with little loss: Proven is the highest rate the link has shown it
// carries, Probed records a probe's outcome, and Probe says when and at what rate to try
// the next one (Probe's back-off after a failure is short and bounded, so a link that
// recovers is found again within seconds, whatever the estimate's own back-off).
package bwe

import (
	"math"
	"time"
)

// Tuning of the estimator.
const (
	// Initial is the estimate before any feedback: enough for a middle layer, so a new
	// subscriber starts with a usable picture and a weak link is found in a second.
	Initial = 800_000
	// Min is the floor of the estimate (audio and the lowest layer must fit).
	Min = 100_000
	// Interval is how often the caller should Update; figures over shorter spans are noise.
	Interval = 500 * time.Millisecond
	// MinBackoff and MaxBackoff bound how long a rate that brought loss is a ceiling.
	MinBackoff = 4 * time.Second
	MaxBackoff = 16 * time.Second
	// lossHigh and lossLow are GCC's thresholds; growth is 12 % a second (GCC: 8 %), so a
	// link that recovers gets its top layer back in about ten seconds.
	lossHigh = 0.10
	lossLow  = 0.02
	growth   = 1.12
	// minReported is how many TWCC statuses an interval needs for its loss to count.
	minReported = 10
	// ProbeLoss is the most loss a probe may see and still succeed; ProbeReach the share
	// of its target rate it must have sent (padding is paced, a loaded bridge lags).
	ProbeLoss  = 0.02
	ProbeReach = 0.85
	// ProbeGap is the wait after a probe that succeeded (the next step may be tried
	// soon), probeBackoffMax the longest wait after failures (it doubles from ProbeGap).
	ProbeGap        = time.Second
	probeBackoffMax = 6 * time.Second
	// lossQuiet is how long after an interval of heavy loss no probe starts.
	lossQuiet = 2 * time.Second
	// QueueHigh is the path's queue that, while the far end acknowledges less than
	// overuseShare of what was sent, is overuse: well above what a loaded machine's late
	// readers add (under 80 ms seen on a box at load 25), well below a shaper's queue
	// (tbf: 200 ms) and the loss that comes once it is full. overuseBack is what the
	// estimate keeps of the acknowledged rate then (GCC's β).
	QueueHigh    = 80 * time.Millisecond
	overuseShare = 0.8
	overuseBack  = 0.85
	// queueHold is how long the queue must have stayed at QueueHigh or more, in every
	// sample, to count: a keyframe's burst on a fast link, or a receiver that stalled
	// and then reports late arrivals, queues for one feedback; a link overrun stays queued.
	queueHold = 100 * time.Millisecond
	// queueFull is a queue that counts at once, in one look: more than a fast link's
	// keyframe burst leaves on average, most of a shaper's whole queue.
	queueFull = 150 * time.Millisecond
)

// Sample is a link's cumulative counters at one time (hopstats.Direction's out side).
type Sample struct {
	At             time.Time
	Bytes, Packets uint64 // sent: RTP header and payload, and packets
	Reported, Lost uint64 // TWCC statuses received about what was sent, and the lost among them
	// QueueDelay is the queue the link's latest feedback found (hopstats QueueDelay).
	QueueDelay time.Duration
}

// Estimator is one link's estimate. Not safe for concurrent use: one goroutine (the
// link's allocator) owns it.
type Estimator struct {
	bps     float64
	last    Sample
	started bool
	// ceiling is the rate that last brought loss, in force until ceilingUntil.
	ceiling      float64
	ceilingUntil time.Time
	backoff      time.Duration
	steadySince  time.Time // since when the loss has stayed under lossHigh
	// Proven is the highest rate (bit/s) the link has carried with little loss: an
	// interval's acknowledged rate under lossLow (no more than it sent), or a probe's
	// rate. Heavy loss lowers it to what crossed then, and the caller's cut after an
	// overrun to what it carries after the cut (Unprove).
	Proven float64
	// nextProbe is when a probe may start; probeFails counts the failures in a row;
	// probing is set while a probe runs (Probing): what crosses then is not all media,
	// and what a queue absorbs is no proof.
	nextProbe  time.Time
	probeFails int
	probing    bool
	// Sent, Acked and Loss are the last interval's send rate, the rate the far end
	// reported received (bit/s, at the interval's mean packet size) and the loss fraction.
	Sent, Acked, Loss float64
	// overused: the last interval's queue was QueueHigh or more while less was
	// acknowledged than sent (overuse); queueSince is since when every sample has shown a
	// queue of QueueHigh or more (zero: the last did not).
	overused   bool
	queueSince time.Time
}

// queued notes the queue of sample s and says whether it has stayed at QueueHigh or more
// for queueHold.
func (e *Estimator) queued(s Sample) bool {
	if s.QueueDelay < QueueHigh {
		e.queueSince = time.Time{}
		return false
	}
	if e.queueSince.IsZero() {
		e.queueSince = s.At
	}
	return s.QueueDelay >= queueFull || s.At.Sub(e.queueSince) >= queueHold
}

// interval is what the counters say about the span from e.last to s: the send rate, the
// acknowledged rate and the loss, and whether there was feedback enough to judge.
func (e *Estimator) interval(s Sample) (sent, acked, loss float64, ok bool) {
	dt := s.At.Sub(e.last.At).Seconds()
	if dt <= 0 {
		return 0, 0, 0, false
	}
	sent = float64(s.Bytes-e.last.Bytes) * 8 / dt
	reported, lost := s.Reported-e.last.Reported, uint64(0)
	if s.Lost > e.last.Lost {
		// A packet counted lost that arrived late moves back to received (hopstats): an
		// interval's count may fall, and must not wrap round to 2^64.
		lost = min(s.Lost-e.last.Lost, reported)
	}
	bytes, packets := s.Bytes-e.last.Bytes, s.Packets-e.last.Packets
	if reported < minReported || packets == 0 {
		return sent, 0, 0, false // too little feedback to judge (an idle link, or feedback lost)
	}
	// Feedback lags what is sent by the path's queue, so the loss of an interval is set
	// against the packets reported in it, not against the send rate.
	acked = float64(reported-lost) * float64(bytes) / float64(packets) * 8 / dt
	return sent, acked, float64(lost) / float64(reported), true
}

// overuse says whether an interval with these figures, ending with sample s, overran
// the link by its queue; it notes s's queue (queued).
func (e *Estimator) overuse(s Sample, sent, acked float64) bool {
	return e.queued(s) && acked < overuseShare*sent
}

// NoteQueue takes the link's counters between Updates, for their queue delay only: the
// caller looks every 100 ms or so, so that a queue must have lasted queueHold, in every
// look, to count as overuse at the next Update. (Updating on such a look instead, over a
// fraction of an interval, judged the rate that crossed from too little feedback: a
// relay link's estimate stayed above what it carried.)
func (e *Estimator) NoteQueue(s Sample) { e.queued(s) }

// New returns an estimator at Initial.
func New() *Estimator { return &Estimator{bps: Initial, backoff: MinBackoff} }

// Bitrate is the current estimate in bit/s.
func (e *Estimator) Bitrate() float64 { return e.bps }

// Update takes the link's counters now and returns the new estimate. want is the most
// the allocator could use on this link (every stream at its top layer): the estimate
// grows no further than a little above it.
func (e *Estimator) Update(s Sample, want float64) float64 {
	if !e.started {
		e.started, e.last, e.steadySince = true, s, s.At
		return e.bps
	}
	dt := s.At.Sub(e.last.At).Seconds()
	if dt <= 0 {
		return e.bps
	}
	prev := e.bps
	sent, acked, loss, ok := e.interval(s)
	e.Sent = sent
	e.last = s
	if !ok {
		return e.bps
	}
	e.Acked, e.Loss = acked, loss
	// A probe's own queue is the probe's to judge (probe.go): it is not the media's.
	e.overused = e.overuse(s, sent, acked) && !e.probing
	switch {
	case e.Loss > lossHigh || e.overused:
		backingOff := e.ceilingUntil.After(s.At)
		// Loss while sending well under the estimate is the queue of an earlier, higher
		// rate draining (feedback lags by a queue's length): it says nothing new, so the
		// estimate is not cut again for it, nor the ceiling lowered.
		if !backingOff || e.Sent >= 0.8*e.bps {
			// GCC: As·(1−0.5·p), and no more than what crossed; on overuse, 0.85 of it.
			crossed := e.Acked
			if e.overused {
				crossed *= overuseBack
			}
			e.bps = math.Min(e.bps*(1-0.5*e.Loss), math.Max(crossed, Min))
		}
		if !backingOff || e.Sent >= e.ceiling {
			if backingOff {
				e.backoff = min(2*e.backoff, MaxBackoff) // failed again soon after: wait longer
			}
			e.ceiling = math.Max(e.Acked, Min)
			e.ceilingUntil = s.At.Add(e.backoff)
		}
		e.steadySince = s.At
		e.Proven = math.Min(e.Proven, e.Acked)
		// No probe into a queue still full: not before the loss has stopped a while.
		if quiet := s.At.Add(lossQuiet); quiet.After(e.nextProbe) {
			e.nextProbe = quiet
		}
	case e.Loss < lossLow:
		if !e.probing {
			// No more than was sent: acknowledgements beyond it are of packets sent
			// before, drained from a queue (after an overrun's cut, 820 kbit/s
			// acknowledged on a 600 kbit/s shaper while 200 were sent).
			e.Proven = math.Max(e.Proven, math.Min(e.Acked, e.Sent))
		}
		// What crossed without loss fits: a publisher raising a layer's rate faster than
		// the growth does not push the estimate under what the link carries.
		e.bps = math.Max(e.bps*math.Pow(growth, dt), e.Acked)
		if s.At.Sub(e.steadySince) > 2*MaxBackoff {
			e.backoff = MinBackoff // a rate held long enough: the link is good again
		}
	}
	if e.ceilingUntil.After(s.At) {
		e.bps = math.Min(e.bps, 0.95*e.ceiling)
	}
	// Growth stops a little above what could be used; a momentary dip of want (a layer
	// measured low for one interval) does not cut the estimate.
	e.bps = math.Min(e.bps, math.Max(math.Max(want*1.25, Min), prev))
	e.bps = math.Max(e.bps, Min)
	return e.bps
}

// Congested says whether the last interval showed loss or overuse: a step down needs it
// (an estimate short of a layer's rate, on a link that carries it without loss or a
// growing queue, is the estimate lagging, not the link failing).
func (e *Estimator) Congested() bool { return e.Loss >= lossLow || e.overused }

// Overrun says whether the last interval overran the link: heavy loss, or overuse by the
// queue. The picture a subscription forwards then is breaking already, and what more is
// sent of it only fills the queue ahead of the keyframe of the layer it steps down to.
func (e *Estimator) Overrun() bool { return e.Loss > lossHigh || e.overused }

// Unprove lowers Proven to rate (bit/s), what the caller carries after cutting an
// overrun link's layers. The interval that overran acknowledged the rate of the queue
// built before the cut, above what the link carries (820 kbit/s read on a 600 kbit/s
// shaper); left proven, a raise back to it was taken a round later with no probe, into
// loss. Any raise above rate is probed again.
func (e *Estimator) Unprove(rate float64) { e.Proven = math.Min(e.Proven, rate) }

// Probe says whether a probe may start at now, for a link that carries need (bit/s) now
// and would carry target after a step up: only when target is beyond what the link has
// shown it carries, and the back-off after the last probe is over.
func (e *Estimator) Probe(now time.Time, need, target float64) bool {
	return target > need && target > e.Proven && !now.Before(e.nextProbe)
}

// Probed records a probe that ended at now: it sent rate bit/s (padding and media) and
// the far end reported loss of it. Success makes rate proven and raises the estimate to
// it, ending a back-off the estimate was in (the probe is fresher news than the loss
// that set it); failure delays the next probe, doubling the wait each time.
func (e *Estimator) Probed(now time.Time, rate, target, loss float64) bool {
	e.probing = false
	ok := loss <= ProbeLoss && rate >= ProbeReach*target
	if ok {
		e.probeFails = 0
		e.nextProbe = now.Add(ProbeGap)
		e.Proven = math.Max(e.Proven, rate)
		e.bps = math.Max(e.bps, rate)
		if e.ceiling < rate {
			e.ceilingUntil = time.Time{}
			e.backoff = MinBackoff
		}
		return true
	}
	e.probeFails++
	e.nextProbe = now.Add(min(ProbeGap<<e.probeFails, probeBackoffMax))
	e.Proven = math.Min(e.Proven, ProbeReach*rate) // the link did not carry rate
	return false
}

// Probing marks a probe started: until Probed, the intervals' traffic proves nothing.
func (e *Estimator) Probing() { e.probing = true }

// StepUp is the extra rate (bit/s) of raising, by one layer, the first stream in priority
// order that has a layer above its current one (cur, as Allocate returns it); 0 if every
// stream is at its top.
func StepUp(streams []Stream, cur []int) float64 {
	best, extra := -1, 0.0
	for i, s := range streams {
		if i >= len(cur) || cur[i] < 0 {
			continue
		}
		next := nextLayer(s.Rates, cur[i])
		if next < 0 {
			continue
		}
		if best < 0 || s.Priority > streams[best].Priority {
			best, extra = i, s.Rates[next]-s.Rates[cur[i]]
		}
	}
	return extra
}

// nextLayer is the next available layer above cur, -1 if none (or cur is -1).
func nextLayer(rates []float64, cur int) int {
	if cur < 0 {
		return -1
	}
	for j := cur + 1; j < len(rates); j++ {
		if rates[j] > 0 {
			return j
		}
	}
	return -1
}

// Stream is one simulcast stream for Allocate: the bit rates of its layers, low to high
// (0 for a layer not available now), and its priority (higher first).
type Stream struct {
	Rates    []float64
	Priority int
}

// Allocate chooses a layer per stream within budget (bit/s): every stream gets its
// lowest available layer (a stream never goes dark for bandwidth, Last-N pauses it
// instead), then, by priority (higher first, ties in order), each is raised one layer at a
// time while the raise fits, round after round, a whole priority level before the next. It returns the layer index per stream
// (-1 for a stream with no layer available). out is reused if it has room.
func Allocate(budget float64, streams []Stream, out []int) []int {
	out = out[:0]
	for _, s := range streams {
		l := -1
		for i, r := range s.Rates {
			if r > 0 {
				l = i
				break
			}
		}
		out = append(out, l)
		if l >= 0 {
			budget -= s.Rates[l]
		}
	}
	order := make([]int, len(streams))
	for i := range order {
		order[i] = i
	}
	// Stable insertion sort by priority: a handful of streams.
	for i := 1; i < len(order); i++ {
		for j := i; j > 0 && streams[order[j]].Priority > streams[order[j-1]].Priority; j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
	// Each priority level is raised as far as it goes before the next one: a round
	// raises every stream of the level one layer, in order, while the raise fits.
	for lo := 0; lo < len(order); {
		hi := lo
		for hi < len(order) && streams[order[hi]].Priority == streams[order[lo]].Priority {
			hi++
		}
		for raised := true; raised; {
			raised = false
			for _, i := range order[lo:hi] {
				if next := nextLayer(streams[i].Rates, out[i]); next >= 0 {
					if cost := streams[i].Rates[next] - streams[i].Rates[out[i]]; cost <= budget {
						budget -= cost
						out[i] = next
						raised = true
					}
				}
			}
		}
		lo = hi
	}
	return out
}
