package signaling

import (
	"context"
	"errors"
	"time"

	"github.com/cau-project/cau/rooms"
)

// writeQueue carries a meeting's store writes (roll call, audit, presence) in order to
// the one goroutine that makes them, without holding the meeting's lock across I/O.
// It is unbounded: a record is never dropped because the store is slow, and the
// meeting stopping only closes the queue, which is drained before run returns. A push
// after close runs on its own goroutine, still tracked by the server's writers group,
// so Server.Close waits for it too.
type writeQueue struct {
	fifo[func(context.Context) error]
}

func newWriteQueue() *writeQueue { return &writeQueue{newFIFO[func(context.Context) error]()} }

// push queues w, or runs it apart (late) if the queue is closed. It never blocks on I/O.
func (wq *writeQueue) push(w func(context.Context) error, late func(func(context.Context) error)) {
	if !wq.fifo.push(w) {
		late(w)
	}
}

// run makes the writes in order until the queue is closed (close) and empty. fail is
// told of each write that fails after its retries.
func (wq *writeQueue) run(fail func(error)) {
	wq.drain(func(w func(context.Context) error) {
		if err := writeWithRetry(w); err != nil {
			fail(err)
		}
	})
}

// writeRetryFor is how long a failed store write is tried again: a record must outlive
// a Redis restart or a Sentinel failover (seconds to tens of seconds), not only a slow
// disk. The meeting's later writes wait behind it, in order.
const writeRetryFor = 30 * time.Second

func writeWithRetry(w func(context.Context) error) error {
	deadline := time.Now().Add(writeRetryFor)
	pause := 200 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := w(ctx)
		cancel()
		if err == nil || errors.Is(err, rooms.ErrFenced) || time.Now().Add(pause).After(deadline) {
			return err // a fenced write is refused for good: another node owns the meeting
		}
		time.Sleep(pause)
		pause = min(2*pause, 2*time.Second)
	}
}
