package signaling

import (
	"context"
	"sync"
	"time"
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

// writeRetries is how many times a failed store write is tried again: a record must
// outlive a store's brief hiccup (a Redis failover), not only a slow disk.
const writeRetries = 3

func writeWithRetry(w func(context.Context) error) error {
	var err error
	for i := range writeRetries + 1 {
		if i > 0 {
			time.Sleep(time.Duration(i) * 200 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = w(ctx)
		cancel()
		if err == nil {
			return nil
		}
	}
	return err
}
