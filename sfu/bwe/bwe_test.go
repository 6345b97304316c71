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
