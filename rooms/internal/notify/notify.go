// Package notify fans meeting changes out to in-process watchers. Both store backends
// use it: bolt publishes after each commit, redis from its pub/sub subscription.
package notify

import (
	"context"
	"sync"

	"github.com/cau-project/cau/rooms"
)

// Buffer is how many undelivered changes a watcher may have before the oldest is
// dropped.
const Buffer = 64

// Hub delivers changes by meeting id. The zero value is not usable; use New.
type Hub struct {
	mu     sync.Mutex                            // guards subs and closed, and every send/close on a watcher channel
	subs   map[string]map[chan rooms.Change]bool // meeting id → watcher channels
	closed bool
}

// New returns an empty hub.
func New() *Hub { return &Hub{subs: map[string]map[chan rooms.Change]bool{}} }

// Subscribe returns a channel of the changes to meetingID published from now on; it
// closes when ctx ends or the hub closes.
func (h *Hub) Subscribe(ctx context.Context, meetingID string) (<-chan rooms.Change, error) {
	ch := make(chan rooms.Change, Buffer)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, rooms.ErrClosed
	}
	if h.subs[meetingID] == nil {
		h.subs[meetingID] = map[chan rooms.Change]bool{}
	}
	h.subs[meetingID][ch] = true
	h.mu.Unlock()
	go func() {
		<-ctx.Done()
		h.mu.Lock()
		defer h.mu.Unlock()
		if set := h.subs[meetingID]; set[ch] { // else Close has closed it
			delete(set, ch)
			if len(set) == 0 {
				delete(h.subs, meetingID)
			}
			close(ch)
		}
	}()
	return ch, nil
}

// Publish hands c to every watcher of c.MeetingID without blocking: a full watcher
// loses its oldest pending change to make room.
func (h *Hub) Publish(c rooms.Change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[c.MeetingID] {
		v := c.Clone()
		for {
			select {
			case ch <- v:
			default:
				select {
				case <-ch: // drop the oldest
				default:
				}
				continue
			}
			break
		}
	}
}

// Close closes every watcher channel; later Subscribe calls fail with rooms.ErrClosed.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	for id, set := range h.subs {
		for ch := range set {
			close(ch)
		}
		delete(h.subs, id)
	}
}
