package signaling

import "sync"

// fifo is an unbounded queue that one goroutine drains in order (drain), so that whoever
// pushes never blocks and never holds its own lock across what the items do. Closing it
// lets drain finish what is queued and return. A meeting has two: its bridge commands
// (opQueue) and its store writes (writeQueue).
type fifo[T any] struct {
	mu     sync.Mutex // guards items and closed; a leaf lock, taken after meeting.mu
	items  []T
	closed bool
	wake   chan struct{} // capacity 1: something was pushed, or the queue closed
}

func newFIFO[T any]() fifo[T] { return fifo[T]{wake: make(chan struct{}, 1)} }

// push queues v and reports true, or reports false once the queue is closed.
func (q *fifo[T]) push(v T) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, v)
	q.mu.Unlock()
	q.poke()
	return true
}

// close lets drain finish what is queued and return.
func (q *fifo[T]) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.poke()
}

// poke wakes drain without blocking: one pending wake-up covers any number of pushes.
func (q *fifo[T]) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// drain calls do on each item in the order pushed until the queue is closed and empty.
func (q *fifo[T]) drain(do func(T)) {
	for {
		q.mu.Lock()
		batch, closed := q.items, q.closed
		q.items = nil
		q.mu.Unlock()
		for _, v := range batch {
			do(v)
		}
		if len(batch) > 0 {
			continue
		}
		if closed {
			return
		}
		<-q.wake
	}
}
