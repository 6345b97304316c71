package tick

import (
	"context"
	"time"
)

// Until sleeps until at or until ctx ends, whichever comes first, and reports whether at
// came with ctx still live: the pacing of a sender that sends its i-th unit at start +
// i×interval (the load tester's endpoints, the tests' media publishers), which stays on
// schedule where sleeping for the interval after each send would drift.
func Until(ctx context.Context, at time.Time) bool {
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
