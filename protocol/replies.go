package protocol

import (
	"strconv"
	"sync"
	"sync/atomic"
)

// Replies matches the replies arriving on one socket to the requests waiting for them,
// by the envelope id: the endpoint client's requests to signaling, and signaling's
// commands to a remote bridge. The zero value is ready; safe for concurrent use (the
// requesters on their goroutines, Deliver on the socket's reader).
type Replies struct {
	next    atomic.Int64
	mu      sync.Mutex // guards waiting
	waiting map[string]chan Envelope
}

// Expect takes a fresh request id and returns it with the channel its reply arrives on.
// done forgets the request; call it once no longer waiting.
func (r *Replies) Expect() (id string, reply <-chan Envelope, done func()) {
	id = strconv.FormatInt(r.next.Add(1), 10)
	ch := make(chan Envelope, 1) // the one reply; Deliver never blocks
	r.mu.Lock()
	if r.waiting == nil {
		r.waiting = map[string]chan Envelope{}
	}
	r.waiting[id] = ch
	r.mu.Unlock()
	return id, ch, func() {
		r.mu.Lock()
		delete(r.waiting, id)
		r.mu.Unlock()
	}
}

// Deliver hands env to the request waiting for its id and reports whether one was. A
// second reply to one request is dropped (still reported as delivered), so the reader
// never blocks on a requester.
func (r *Replies) Deliver(env Envelope) bool {
	if env.ID == "" {
		return false
	}
	r.mu.Lock()
	ch := r.waiting[env.ID]
	r.mu.Unlock()
	if ch == nil {
		return false
	}
	select {
	case ch <- env:
	default:
	}
	return true
}
