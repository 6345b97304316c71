package tick

import (
	"context"
	"testing"
	"time"
)

// TestEveryTicksUntilDone: fn runs on the caller's goroutine, tick after tick with
// increasing times, and Every returns once done is closed (a tick due at the same moment
// may still run: select picks either).
func TestEveryTicksUntilDone(t *testing.T) {
	done := make(chan struct{})
	var times []time.Time
	Every(done, time.Millisecond, func(now time.Time) {
		if n := len(times); n > 0 && !now.After(times[n-1]) {
			t.Errorf("tick %d at %v, not after the previous one at %v", n, now, times[n-1])
		}
		times = append(times, now)
		if len(times) == 3 {
			close(done)
		}
	})
	if len(times) < 3 {
		t.Fatalf("Every returned after %d ticks, before done was closed", len(times))
	}
}

// TestUntil: Until returns true once the time comes (not before), at once for a time
// past, and false as soon as its context ends.
func TestUntil(t *testing.T) {
	start := time.Now()
	if !Until(context.Background(), start.Add(20*time.Millisecond)) {
		t.Fatal("Until returned false with a live context")
	}
	if waited := time.Since(start); waited < 20*time.Millisecond {
		t.Errorf("Until returned after %v, before its time (20ms)", waited)
	}
	if !Until(context.Background(), start) {
		t.Error("Until a time past returned false with a live context")
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	if Until(ctx, time.Now().Add(time.Hour)) {
		t.Error("Until returned true though its context ended first")
	}
	if Until(ctx, start) {
		t.Error("Until a time past returned true with an ended context")
	}
}
