package memtune

import (
	"context"
	"runtime/debug"
	"time"
)

// IdlePeriod is how often a server checks whether it has fallen idle (ReleaseWhenIdle).
const IdlePeriod = 10 * time.Second

// ReleaseWhenIdle returns the heap's free memory to the system once a server falls idle,
// and runs until ctx ends. Every period it asks busy (a bridge: any peer connected); after
// a poll that found it busy, the first poll that finds it idle calls release (normally
// debug.FreeOSMemory: a collection, then every free page returned), once until it is
// busy again.
//
// Why (issue 11): after a 258-endpoint meeting ended, the heap in use fell to what the
// runtime's pools keep only at the next collection, and with nothing allocating, the
// next collection is the runtime's forced one, two minutes on; the resident memory stayed
// at the meeting's until then and past it, as the scavenger returns pages slowly. An idle
// server has nothing to lose to one full collection.
func ReleaseWhenIdle(ctx context.Context, period time.Duration, busy func() bool, release func()) {
	if release == nil {
		release = debug.FreeOSMemory
	}
	t := time.NewTicker(period)
	defer t.Stop()
	wasBusy := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		switch b := busy(); {
		case b:
			wasBusy = true
		case wasBusy:
			wasBusy = false
			release()
		}
	}
}
