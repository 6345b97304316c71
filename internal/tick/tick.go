// Package tick runs periodic work on the calling goroutine: the ticker loop the bridge's
// allocators, the monitor, presence and the signaling leases each wrote out (Every), and
// the pacing of senders on a schedule (Until).
package tick

import "time"

// Every calls fn with the tick's time every d until done is closed, on the calling
// goroutine; it returns once done is closed. A call of fn that takes longer than d
// makes the ticker drop ticks rather than queue them (time.Ticker), so a slow round is
// followed by one on time, not by a burst.
func Every(done <-chan struct{}, d time.Duration, fn func(now time.Time)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			fn(now)
		}
	}
}
