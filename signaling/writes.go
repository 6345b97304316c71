package signaling

import (
	"context"
	"errors"
	"sync"
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
	mu     sync.Mutex // guards q and closed; a leaf lock
	q      []func(context.Context) error
	closed bool
	wake   chan struct{} // capacity 1: something was pushed, or the queue closed
}

func newWriteQueue() *writeQueue { return &writeQueue{wake: make(chan struct{}, 1)} }

// push queues w, or runs it apart if the queue is closed. It never blocks on I/O.
func (wq *writeQueue) push(w func(context.Context) error, late func(func(context.Context) error)) {
	wq.mu.Lock()
	if wq.closed {
		wq.mu.Unlock()
		late(w)
		return
	}
	wq.q = append(wq.q, w)
	wq.mu.Unlock()
	select {
	case wq.wake <- struct{}{}:
	default:
	}
}

// close ends the queue once what is in it has been written.
func (wq *writeQueue) close() {
	wq.mu.Lock()
	wq.closed = true
	wq.mu.Unlock()
	select {
	case wq.wake <- struct{}{}:
	default:
	}
}

// run makes the writes in order until the queue is closed and empty. fail is told of
// each write that fails after its retries.
func (wq *writeQueue) run(fail func(error)) {
	for {
		wq.mu.Lock()
		batch, closed := wq.q, wq.closed
		wq.q = nil
		wq.mu.Unlock()
		for _, w := range batch {
			if err := writeWithRetry(w); err != nil {
				fail(err)
			}
		}
		if len(batch) > 0 {
			continue
		}
		if closed {
			return
		}
		<-wq.wake
	}
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
