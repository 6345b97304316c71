package signaling

// Meeting ownership across signaling nodes (issue 16). With Config.Leases set, a live
// meeting runs on one node only, the holder of its lease (package lease): that node
// places its endpoints, plans its relay tree and keeps its floor, as a single node does.
// A session that reaches another node is forwarded to the owner (forward.go). The owner
// renews its leases every TTL/3; when it cannot (Redis unreachable) for long enough that
// the lease might expire, or finds the lease taken, it stops acting as owner and closes
// the meeting's sockets with 1012, so their clients come back through the new owner.

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/internal/tick"
	"github.com/cau-project/cau/lease"
	"github.com/cau-project/cau/rooms"
)

// Leases holds and looks up meeting leases; *lease.Redis is the implementation.
type Leases interface {
	// Acquire takes the meeting's lease for this node, or returns its holder (mine false).
	Acquire(ctx context.Context, m ids.MeetingID) (l lease.Lease, mine bool, err error)
	// Renew extends a lease this node holds; lease.ErrLost if it is no longer its own.
	Renew(ctx context.Context, l lease.Lease) error
	// Release gives a lease up.
	Release(ctx context.Context, l lease.Lease) error
	// TTL is a lease's life after its last renewal.
	TTL() time.Duration
}

var _ Leases = (*lease.Redis)(nil)

// ownership is the leases this node holds. Its lock is a leaf: no other lock of the
// package is taken while it is held, and it is never held across Redis calls.
type ownership struct {
	srv  *Server
	stop chan struct{} // closed by Server.Close: ends renewLoop
	done chan struct{} // closed when renewLoop has ended

	mu   sync.Mutex // guards held
	held map[ids.MeetingID]*heldLease
}

// heldLease is a lease this node holds and until when it may act on it.
type heldLease struct {
	l lease.Lease
	// valid is when the lease may have expired in Redis, counted from the start of the
	// last successful acquire or renewal (so a slow reply never extends it).
	valid time.Time
	// used is the last time a join asked for the meeting: a lease whose meeting is not
	// live here is kept for a TTL after that, while the join builds the meeting.
	used time.Time
}

func newOwnership(srv *Server) *ownership {
	o := &ownership{srv: srv, stop: make(chan struct{}), done: make(chan struct{}), held: map[ids.MeetingID]*heldLease{}}
	go o.renewLoop()
	return o
}

// errNotOwner: the meeting is owned by another node that cannot be reached.
var errNotOwner = errors.New("the meeting's signaling node is unreachable")

// claim makes this node the meeting's owner if nobody is, and says who owns it: local
// true, or the owner's base URL.
func (o *ownership) claim(ctx context.Context, m ids.MeetingID) (local bool, addr string, err error) {
	now := time.Now()
	o.mu.Lock()
	if h := o.held[m]; h != nil && now.Before(h.valid) {
		h.used = now
		o.mu.Unlock()
		return true, "", nil
	}
	o.mu.Unlock()
	leases := o.srv.cfg.Leases
	l, mine, err := leases.Acquire(ctx, m)
	if err != nil {
		return false, "", err
	}
	if !mine {
		return false, l.Addr, nil
	}
	o.mu.Lock()
	h := o.held[m]
	fresh := h == nil || h.l.Token != l.Token
	o.held[m] = &heldLease{l: l, valid: now.Add(leases.TTL()), used: now}
	o.mu.Unlock()
	if fresh {
		o.srv.log.Info("meeting owned", "meeting", m, "token", l.Token)
		if mt := o.srv.cfg.Metrics; mt != nil {
			if h == nil {
				mt.Owned.Inc()
			}
			mt.LeaseChanges.WithLabelValues("acquired").Inc()
		}
	}
	return true, "", nil
}

// renewLoop renews the held leases every TTL/3 until stop.
func (o *ownership) renewLoop() {
	defer close(o.done)
	every := o.srv.cfg.Leases.TTL() / 3
	tick.Every(o.stop, every, func(time.Time) { o.renewAll(every) })
}

// renewAll renews each lease whose meeting is live here (or was asked for lately) and
// lets the others expire; a lease lost, or not renewed in time, ends the meeting here.
// The renewals run side by side under one deadline: one after the other, a Redis that
// stopped answering (a silent partition: each call waits out its timeout) would reach
// the tenth meeting's lease seconds after it expired, while this node still acted as
// that meeting's owner.
func (o *ownership) renewAll(timeout time.Duration) {
	o.mu.Lock()
	hs := make([]heldLease, 0, len(o.held))
	for _, h := range o.held {
		hs = append(hs, *h)
	}
	o.mu.Unlock()
	ttl := o.srv.cfg.Leases.TTL()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	errs := make([]error, len(hs))
	sem := make(chan struct{}, renewConcurrency)
	var wg sync.WaitGroup
	for i, h := range hs {
		if !o.srv.live(h.l.Meeting) && start.Sub(h.used) > ttl {
			o.drop(h.l, "idle")
			hs[i].l.Meeting = ""
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = o.srv.cfg.Leases.Renew(ctx, h.l)
		}()
	}
	wg.Wait()
	for i, h := range hs {
		m, err := h.l.Meeting, errs[i]
		switch {
		case m == "":
		case err == nil:
			o.mu.Lock()
			if cur := o.held[m]; cur != nil && cur.l.Token == h.l.Token {
				cur.valid = start.Add(ttl)
			}
			o.mu.Unlock()
		case errors.Is(err, lease.ErrLost):
			o.lost(h.l, "taken over")
		case time.Now().Add(2 * timeout).After(h.valid):
			// Fencing: the next round (a tick away, then up to its timeout) could end
			// after the lease expired and another node took the meeting; stop acting as
			// its owner now, while the lease is still ours.
			o.srv.log.Error("meeting lease not renewed in time", "meeting", m, "err", err)
			o.lost(h.l, "not renewed")
		default:
			o.srv.log.Warn("meeting lease renewal", "meeting", m, "err", err)
		}
	}
}

// renewConcurrency bounds the lease renewals in flight at once (one Redis round trip
// each; a node owns tens of meetings, not thousands).
const renewConcurrency = 64

// drop forgets a lease this node no longer needs; it expires in Redis by itself.
func (o *ownership) drop(l lease.Lease, why string) bool {
	o.mu.Lock()
	h := o.held[l.Meeting]
	ok := h != nil && h.l.Token == l.Token
	if ok {
		delete(o.held, l.Meeting)
	}
	o.mu.Unlock()
	if ok {
		if mt := o.srv.cfg.Metrics; mt != nil {
			mt.Owned.Dec()
			mt.LeaseChanges.WithLabelValues(why).Inc()
		}
	}
	return ok
}

// lost stops acting as the meeting's owner: its sockets are closed with 1012, so their
// clients come back and are forwarded to whoever owns it now.
func (o *ownership) lost(l lease.Lease, why string) {
	if !o.drop(l, "lost") {
		return
	}
	o.srv.log.Warn("meeting lease lost; moving its sessions", "meeting", l.Meeting, "token", l.Token, "why", why)
	o.srv.mu.Lock()
	m := o.srv.meetings[l.Meeting]
	o.srv.mu.Unlock()
	if m != nil {
		m.handOver()
		go m.closeAll(websocket.CloseServiceRestart, "meeting moved to another signaling node")
	}
}

// close stops renewing and releases every lease, so other nodes take the meetings over
// at once. Called by Server.Close after the sessions are closed.
func (o *ownership) close() {
	close(o.stop)
	<-o.done
	o.mu.Lock()
	hs := make([]lease.Lease, 0, len(o.held))
	for _, h := range o.held {
		hs = append(hs, h.l)
	}
	o.mu.Unlock()
	for _, l := range hs {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := o.srv.cfg.Leases.Release(ctx, l); err != nil {
			o.srv.log.Warn("release meeting lease", "meeting", l.Meeting, "err", err)
		}
		cancel()
		o.drop(l, "released")
	}
}

// fenceKeyer names the store key of a meeting's fencing-token counter (*lease.Redis).
type fenceKeyer interface {
	FenceKey(m ids.MeetingID) string
}

// fence is the fence of the meeting's lease as this node holds it now; false when it
// holds none, or the leases have no counter a store can check.
func (o *ownership) fence(m ids.MeetingID) (rooms.Fence, bool) {
	fk, ok := o.srv.cfg.Leases.(fenceKeyer)
	if !ok {
		return rooms.Fence{}, false
	}
	o.mu.Lock()
	h := o.held[m]
	o.mu.Unlock()
	if h == nil {
		return rooms.Fence{}, false
	}
	return rooms.Fence{Key: fk.FenceKey(m), Token: h.l.Token}, true
}

// live reports whether the meeting has a live state on this node.
func (s *Server) live(m ids.MeetingID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.meetings[m] != nil
}
