package bwe

import (
	"testing"
	"time"
)

// link drives an Estimator with the counters of a link that carries at most capacity
// bit/s: whatever is sent above it is lost, as through a shaper's full queue.
type link struct {
	e        *Estimator
	capacity float64
	s        Sample
}

// send runs one interval at rate bit/s and returns the estimate.
func (l *link) send(rate, want float64) float64 {
	l.s.At = l.s.At.Add(Interval)
	bytes := rate / 8 * Interval.Seconds()
	packets := bytes / 1000
	l.s.Bytes += uint64(bytes)
	l.s.Packets += uint64(packets)
	l.s.Reported += uint64(packets)
	if rate > l.capacity {
		l.s.Lost += uint64(packets * (rate - l.capacity) / rate)
	}
	return l.e.Update(l.s, want)
}

func TestEstimateFallsToCapacityAndBacksOff(t *testing.T) {
	l := &link{e: New(), capacity: 600_000, s: Sample{At: time.Unix(0, 0)}}
	l.send(0, 2e6) // the first sample only starts the counters
	// The sender follows the estimate, as the allocator makes it.
	est := l.e.Bitrate()
	for i := 0; i < 6; i++ {
		est = l.send(1_500_000, 2e6) // the top layer goes on until a keyframe of a lower one
	}
	if est > 600_000 {
		t.Fatalf("estimate %.0f after 3 s at 60%% loss, want at most the capacity", est)
	}
	// At a rate that fits, it grows but stays under the rate that failed while backing off.
	for i := 0; i < 2*int(MinBackoff/Interval)-1; i++ {
		est = l.send(min(est, 550_000), 2e6)
		if est > 600_000 {
			t.Fatalf("interval %d: estimate %.0f above the failed rate during back-off", i, est)
		}
	}
}

func TestEstimateGrowsOnACleanLinkBoundedByWant(t *testing.T) {
	l := &link{e: New(), capacity: 1e9, s: Sample{At: time.Unix(0, 0)}}
	l.send(0, 3e6)
	est := 0.0
	for i := 0; i < 60; i++ { // 30 s
		est = l.send(min(l.e.Bitrate(), 3e6), 3e6)
	}
	if est < 2.9e6 || est > 3e6*1.25 {
		t.Fatalf("estimate %.0f after 30 s clean with want 3 Mbit/s", est)
	}
	high := est
	for i := 0; i < 60; i++ {
		est = l.send(200_000, 200_000) // only a low layer is wanted now
		if est > high {
			t.Fatalf("estimate %.0f grew past %.0f while only 200 kbit/s could be used", est, high)
		}
	}
}

func TestAllocate(t *testing.T) {
	low, mid, high := 150e3, 700e3, 1.5e6
	a := Stream{Rates: []float64{low, mid, high}}
	chair := Stream{Rates: []float64{low, mid, high}, Priority: 1}
	cases := []struct {
		name    string
		budget  float64
		streams []Stream
		want    []int
	}{
		{"nothing fits: lowest anyway", 50e3, []Stream{a, a}, []int{0, 0}},
		{"one raise", 1e6, []Stream{a, a}, []int{1, 0}},
		{"both to mid", 1.5e6, []Stream{a, a}, []int{1, 1}},
		{"chair first, to the top", 1.8e6, []Stream{a, chair}, []int{0, 2}},
		{"a missing layer is skipped", 1e6, []Stream{{Rates: []float64{0, mid, high}}}, []int{1}},
		{"mid missing: straight to high", 2e6, []Stream{{Rates: []float64{low, 0, high}}}, []int{2}},
		{"no layer measured", 1e6, []Stream{{Rates: []float64{0, 0, 0}}}, []int{-1}},
	}
	for _, c := range cases {
		got := Allocate(c.budget, c.streams, nil)
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: got %v, want %v", c.name, got, c.want)
				break
			}
		}
	}
}

// TestLossCountFalling: hopstats moves a packet counted lost back to received when it
// arrives late, so an interval's lost count can fall; the estimate must read that as no
// loss, not as 2^64 packets lost (it fell to its floor on a clean relay link).
func TestLossCountFalling(t *testing.T) {
	e := New()
	at := time.Unix(0, 0)
	e.Update(Sample{At: at, Bytes: 1e5, Packets: 100, Reported: 100, Lost: 5}, 2e6)
	est := e.Update(Sample{At: at.Add(Interval), Bytes: 2e5, Packets: 200, Reported: 200, Lost: 3}, 2e6)
	if est < Initial || e.Loss != 0 {
		t.Fatalf("estimate %.0f, loss %v after the lost count fell by 2", est, e.Loss)
	}
}

// A step beyond what the link carried is probed; a probe that fails waits longer each
// time (bounded), one that succeeds makes its rate proven, lifts the estimate to it and
// ends the estimate's back-off.
func TestProbe(t *testing.T) {
	at := time.Unix(0, 0)
	l := &link{e: New(), capacity: 600_000, s: Sample{At: at}}
	l.send(0, 2e6)
	for i := 0; i < 4; i++ {
		l.send(1_500_000, 2e6) // a top layer the link cannot carry: back-off
	}
	e := l.e
	if e.Proven > 600_000 {
		t.Fatalf("proven %.0f after 60%% loss, want at most what crossed", e.Proven)
	}
	if e.Probe(l.s.At.Add(lossQuiet-Interval), 200_000, 700_000) {
		t.Fatal("a probe while the loss had just stopped")
	}
	now := l.s.At.Add(lossQuiet)
	if !e.Probe(now, 200_000, 700_000) {
		t.Fatal("no probe of an unproven step")
	}
	if e.Probe(now, 700_000, 700_000) {
		t.Fatal("a probe without a step up")
	}
	var waits []time.Duration
	for i := 0; i < 5; i++ {
		if e.Probed(now, 700_000, 700_000, 0.2) {
			t.Fatal("a probe with 20 % loss succeeded")
		}
		wait := time.Duration(0)
		for !e.Probe(now.Add(wait), 200_000, 700_000) {
			wait += 100 * time.Millisecond
		}
		waits = append(waits, wait)
	}
	for i := 1; i < len(waits); i++ {
		if waits[i] < waits[i-1] || waits[i] > probeBackoffMax {
			t.Fatalf("waits after failed probes %v: want growing, at most %v", waits, probeBackoffMax)
		}
	}
	if e.Probed(now, 500_000, 700_000, 0) {
		t.Fatal("a probe that reached 500 of 700 kbit/s succeeded")
	}
	// The link recovered: the probe succeeds within the back-off of the estimate itself.
	now = now.Add(waits[len(waits)-1])
	if !e.Probed(now, 1_400_000, 1_400_000, 0.01) {
		t.Fatal("a clean probe failed")
	}
	if e.Proven != 1_400_000 || e.Bitrate() < 1_400_000 {
		t.Fatalf("after a probe at 1.4 Mbit/s: proven %.0f, estimate %.0f", e.Proven, e.Bitrate())
	}
	l.s.At, l.capacity = now, 2e6
	if est := l.send(1_400_000, 2e6); est < 1_400_000*0.95 {
		t.Fatalf("estimate %.0f after the probe: the old back-off still holds it down", est)
	}
	if e.Probe(now.Add(ProbeGap/2), 1_400_000, 2_000_000) || !e.Probe(now.Add(ProbeGap), 1_400_000, 2_000_000) {
		t.Fatal("after a success the next probe waits ProbeGap")
	}
}

func TestStepUp(t *testing.T) {
	low, mid, high := 150e3, 700e3, 1.5e6
	a := Stream{Rates: []float64{low, mid, high}}
	chair := Stream{Rates: []float64{low, mid, high}, Priority: 1}
	if got := StepUp([]Stream{a, chair}, []int{0, 1}); got != high-mid {
		t.Errorf("step up %.0f, want the chair's next layer first", got)
	}
	if got := StepUp([]Stream{a, chair}, []int{0, 2}); got != mid-low {
		t.Errorf("step up %.0f, want the other stream's", got)
	}
	if got := StepUp([]Stream{a, {Rates: []float64{low, 0, high}}}, []int{2, 0}); got != high-low {
		t.Errorf("step up %.0f over a missing layer", got)
	}
	if got := StepUp([]Stream{a}, []int{2}); got != 0 {
		t.Errorf("step up %.0f at the top", got)
	}
}

// queued is a sample dt after s of a link that delivers delivered of sent bit/s with
// nothing lost yet (a shaper's queue takes the rest) and a queue of queue.
func queued(s Sample, dt time.Duration, sent, delivered float64, queue time.Duration) Sample {
	s.At = s.At.Add(dt)
	packets := sent / 8 * dt.Seconds() / 1000
	s.Bytes += uint64(sent / 8 * dt.Seconds())
	s.Packets += uint64(packets)
	s.Reported += uint64(packets * delivered / sent)
	s.QueueDelay = queue
	return s
}

// TestOveruseByTheQueue: a shaper queues before it drops. A queue of QueueHigh or more
// that lasts queueHold while the far end acknowledges clearly less than was sent cuts the
// estimate to 0.85 of what crossed, before any loss, and says the link is overrun; a
// queue on a link that delivers what is sent (a loaded receiver reading late), or one
// seen once (a keyframe's burst), changes nothing.
func TestOveruseByTheQueue(t *testing.T) {
	at := time.Unix(0, 0)
	e := New()
	s := Sample{At: at}
	e.Update(s, 3e6)
	s = queued(s, Interval, 1_500_000, 1_500_000, 0)
	before := e.Update(s, 3e6)
	for i := 0; i < 2; i++ {
		s = queued(s, Interval, 1_500_000, 1_500_000, 120*time.Millisecond) // late reads: all delivered
		if est := e.Update(s, 3e6); est < before || e.Congested() || e.Overrun() {
			t.Fatalf("estimate %.0f (was %.0f), congested %v, overrun %v with a queue but everything delivered",
				est, before, e.Congested(), e.Overrun())
		}
	}
	s = queued(s, Interval, 1_500_000, 1_500_000, 0)
	e.Update(s, 3e6)
	s = queued(s, Interval, 1_500_000, 1_000_000, 120*time.Millisecond) // a burst, seen once
	if est := e.Update(s, 3e6); est < before || e.Overrun() {
		t.Fatalf("estimate %.0f (was %.0f), overrun %v after one look at a queue", est, before, e.Overrun())
	}
	s = queued(s, Interval, 1_500_000, 400_000, 120*time.Millisecond)
	est := e.Update(s, 3e6)
	if e.Loss != 0 || !e.Congested() || !e.Overrun() {
		t.Fatalf("loss %v, congested %v, overrun %v: want overuse without loss", e.Loss, e.Congested(), e.Overrun())
	}
	if est > 0.86*400_000 {
		t.Fatalf("estimate %.0f after overuse at 400 kbit/s delivered, want at most 0.85 of it", est)
	}
}

// TestQueueHold: a queue counts as overuse only once every look at it, NoteQueue's
// between Updates included, has shown QueueHigh or more for queueHold.
func TestQueueHold(t *testing.T) {
	e := New()
	s := Sample{At: time.Unix(0, 0)}
	e.Update(s, 3e6)
	s = queued(s, Interval, 1_500_000, 1_500_000, 0)
	e.Update(s, 3e6)
	e.NoteQueue(queued(s, Interval-2*queueHold, 1_500_000, 400_000, 120*time.Millisecond))
	e.NoteQueue(queued(s, Interval-queueHold, 1_500_000, 1_500_000, 0)) // gone again: a burst
	s = queued(s, Interval, 1_500_000, 400_000, 120*time.Millisecond)
	if e.Update(s, 3e6); e.Overrun() {
		t.Fatal("overuse from a queue seen in one look")
	}
	e.NoteQueue(queued(s, Interval-queueHold, 1_500_000, 400_000, 120*time.Millisecond))
	s = queued(s, Interval, 1_500_000, 400_000, 120*time.Millisecond)
	if e.Update(s, 3e6); !e.Overrun() {
		t.Fatal("no overuse from a queue that lasted queueHold while a quarter of the rate was delivered")
	}
	// A queue near a shaper's whole counts in one look.
	s = queued(s, Interval, 400_000, 400_000, 0)
	e.Update(s, 3e6)
	s = queued(s, Interval, 1_500_000, 400_000, queueFull)
	if e.Update(s, 3e6); !e.Overrun() {
		t.Fatal("no overuse from one look at a full queue")
	}
}

// TestUnproveAfterOverrun: the interval that overruns a shaper acknowledges the queue
// built before the cut, more than the link carries, and the intervals after the cut
// still drain it (more acknowledged than sent). Neither may leave a rate above what is
// carried after the cut proven: a raise back to it must be probed first. A clean
// interval proves no more than it sent.
func TestUnproveAfterOverrun(t *testing.T) {
	e := New()
	s := Sample{At: time.Unix(0, 0)}
	e.Update(s, 3e6)
	for range 4 {
		s = queued(s, Interval, 1_500_000, 1_500_000, 0) // unshaped: the top layer crosses
		e.Update(s, 3e6)
	}
	if e.Proven < 1_400_000 {
		t.Fatalf("proven %.0f after 2 s at 1.5 Mbit/s clean", e.Proven)
	}
	// Shaped to 600 kbit/s: the queue fills, 820 kbit/s acknowledged (the burst the
	// shaper let through, and its queue).
	s = queued(s, Interval, 1_500_000, 820_000, queueFull)
	e.Update(s, 3e6)
	if !e.Overrun() {
		t.Fatal("no overrun with a full queue and half the rate acknowledged")
	}
	const carried = 250_000 // the low layer and audio, after the cut
	e.Unprove(carried)
	if e.Proven != carried {
		t.Fatalf("proven %.0f after Unprove(%d)", e.Proven, carried)
	}
	e.Unprove(2 * carried)
	if e.Proven != carried {
		t.Fatalf("Unprove raised proven to %.0f", e.Proven)
	}
	// The queue drains: 600 kbit/s acknowledged while 250 are sent, nothing lost, and the
	// queue shrinking under QueueHigh.
	for i := range int(lossQuiet/Interval) - 1 {
		s = queued(s, Interval, carried, 600_000, 0)
		e.Update(s, 3e6)
		if e.Proven > carried {
			t.Fatalf("interval %d after the cut: proven %.0f from the queue's backlog, %d sent", i, e.Proven, carried)
		}
	}
	mid := 800_000.0 // the middle layer and audio, with the raise's headroom
	if e.Probe(s.At, carried, mid) {
		t.Fatal("a probe into the queue the overrun left")
	}
	// Past lossQuiet what crosses is proven, no more than was sent, and the step up is
	// probed, not taken.
	s = queued(s, Interval, 300_000, 300_000, 0)
	e.Update(s, 3e6)
	s = queued(s, Interval, 300_000, 500_000, 0) // the feedback of a late burst
	e.Update(s, 3e6)
	if e.Proven != 300_000 {
		t.Fatalf("proven %.0f after clean intervals at 300 kbit/s past lossQuiet", e.Proven)
	}
	if !e.Probe(s.At, 300_000, mid) {
		t.Fatalf("no probe of a step to %.0f with %.0f proven", mid, e.Proven)
	}
}
