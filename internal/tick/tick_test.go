package tick

import (
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
