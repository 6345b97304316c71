package sfu

import (
	"testing"
	"time"
)

func TestReceiveStatsLossAndJitter(t *testing.T) {
	r := rxStats{clockPerSec: 90000}
	start := time.Unix(1000, 0)
	// 200 packets every 10 ms (900 RTP units) across a sequence wrap; 10 are lost, one
	// arrives late after the wrap, and the arrival times are perfectly regular.
	seq := uint16(0xff9c) // 100 before the wrap
	received := 0
	for i := 0; i < 200; i++ {
		s := seq + uint16(i)
		if i%20 == 7 || i == 101 {
			if i == 101 {
				continue // arrives late, below
			}
			continue
		}
		r.observe(s, uint32(i*900), start.Add(time.Duration(i)*10*time.Millisecond))
		received++
	}
	r.observe(seq+101, 101*900, start.Add(2005*time.Millisecond)) // late, from across the wrap
	received++
	if got := r.expected.Load(); got != 200 {
		t.Fatalf("expected %d, want 200 (the late packet must not count as a new wrap)", got)
	}
	if lost := 200 - received; lost != 10 {
		t.Fatalf("test bug: %d lost", lost)
	}
	// The late packet is a retransmission or reordering, not jitter: the regular
	// spacing of the others leaves jitter at 0.
	if j := r.jitter.Load(); j != 0 {
		t.Fatalf("jitter %d RTP units: a late packet must not count as jitter", j)
	}
	r3 := rxStats{clockPerSec: 48000}
	for i := 0; i < 200; i++ {
		wobble := time.Duration(i%2) * 8 * time.Millisecond // every other packet 8 ms late
		r3.observe(uint16(i), uint32(i*960), start.Add(time.Duration(i)*20*time.Millisecond+wobble))
	}
	// RFC 3550: J converges to the mean |D| = 8 ms = 384 units at 48 kHz.
	if j := r3.jitter.Load(); j < 300 || j > 420 {
		t.Fatalf("jitter %d units for ±8 ms arrivals, want about 384", j)
	}
	r2 := rxStats{clockPerSec: 48000}
	for i := 0; i < 100; i++ {
		r2.observe(uint16(i), uint32(i*960), start.Add(time.Duration(i)*20*time.Millisecond))
	}
	if j := r2.jitter.Load(); j != 0 {
		t.Fatalf("perfectly regular packets: jitter %d, want 0", j)
	}
}
