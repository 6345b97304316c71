package signaling

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/rooms"
)

// The floor of a meeting lives in the store when the meeting is scheduled there: every
// signaling node updates it with UpdateFloor (one transaction) and learns of changes
// through Watch, so nodes agree within the store's notification delay. An ad hoc meeting
// (dev mode, tests, no store) keeps its floor in memory under meeting.mu.

// errMeetingClosed refuses a join outside the meeting's test window and time.
var errMeetingClosed = errors.New("the meeting is not open")

// openScheduled looks up a meeting in the store. found is false when the store has no
// such meeting.
func (s *Server) openScheduled(ctx context.Context, id string) (m rooms.Meeting, found bool, err error) {
	if s.cfg.Store == nil {
		return rooms.Meeting{}, false, nil
	}
	m, err = s.cfg.Store.Meeting(ctx, id)
	if errors.Is(err, rooms.ErrNotFound) {
		return rooms.Meeting{}, false, nil
	}
	if err != nil {
		return rooms.Meeting{}, false, fmt.Errorf("meeting %s: %w", id, err)
	}
	return m, true, nil
}

// admit checks that claims may join the scheduled meeting now: the meeting is in its test
// window or live, and the holder's site takes part (technicians and admins may join any
// meeting, to test and to watch).
func admit(m rooms.Meeting, c *auth.Claims, now time.Time) error {
	switch st := m.StateAt(now); st {
	case rooms.StateTesting, rooms.StateLive:
	default:
		return fmt.Errorf("%w: it is %s (test window opens %s)", errMeetingClosed, st,
			rooms.FormatLocal(m.WindowStart()))
	}
	if c.Role == auth.RoleAdmin || c.Role == auth.RoleTechnician || m.HasSite(c.Site) {
		return nil
	}
	return fmt.Errorf("%w: site %q does not take part in it", errMeetingClosed, c.Site)
}

// startFloor loads the floor and, for a stored meeting, follows its changes.
// Called once when the meeting object is created.
func (m *meeting) startFloor(ctx context.Context) {
	if m.sched == nil {
		m.floor = rooms.NewFloor(m.adHoc()).State()
		return
	}
	st, err := m.srv.cfg.Store.Floor(ctx, string(m.id))
	if err != nil {
		st = rooms.NewFloor(*m.sched).State()
	}
	m.floor = st
	wctx, cancel := context.WithCancel(context.Background())
	m.stopWatch = cancel
	ch, err := m.srv.cfg.Store.Watch(wctx, string(m.id))
	if err != nil {
		m.srv.log.Error("watch meeting", "meeting", m.id, "err", err)
		return
	}
	go func() {
		// The floor is also read back every floorResync (issue 12, finding 8): a change
		// published while this node's subscription was down (a Redis restart, a cut) is
		// never delivered again, and setFloor ignores a state it already has.
		tick := time.NewTicker(floorResync)
		defer tick.Stop()
		for {
			var c rooms.Change
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
				m.resyncFloor(wctx)
				continue
			case got, ok := <-ch:
				if !ok {
					return
				}
				c = got
			}
			switch {
			case c.Kind == rooms.ChangeFloor && c.Floor != nil:
				m.mu.Lock()
				m.setFloor(*c.Floor)
				m.mu.Unlock()
			case c.Kind == rooms.ChangeMeeting && (c.Meeting == nil || c.Meeting.State == rooms.StateEnded ||
				c.Meeting.State == rooms.StateCancelled):
				// Ended, cancelled or deleted through the API: everyone leaves now.
				m.closeAll(protocol.CloseMeetingEnded, "the meeting was ended")
			}
		}
	}()
}

// floorResync is how often a live meeting reads its floor back from the store.
const floorResync = 5 * time.Second

// resyncFloor reads the floor from the store and applies it if it is newer.
func (m *meeting) resyncFloor(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, floorResync)
	defer cancel()
	st, err := m.srv.cfg.Store.Floor(rctx, string(m.id))
	if err != nil {
		if ctx.Err() == nil {
			m.srv.log.Warn("floor resync", "meeting", m.id, "err", err)
		}
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if st.Version > m.floor.Version {
		m.srv.log.Info("floor change missed by the watch applied", "meeting", m.id, "version", st.Version)
		m.setFloor(st)
	}
}

// adHoc describes an unscheduled meeting as rooms needs it: its sites are those of the
// participants, its chair site that of the first chair to join. Caller holds m.mu.
func (m *meeting) adHoc() rooms.Meeting {
	am := rooms.Meeting{ID: string(m.id), Mode: rooms.ModeDiscussion, ChairSite: m.chairSite}
	for _, s := range m.participants {
		am.Sites = append(am.Sites, s.claims.Site)
	}
	return am
}

// setFloor installs a newer floor state, tells everyone and recomputes forwarding.
// Caller holds m.mu.
func (m *meeting) setFloor(st rooms.FloorState) { m.setFloorBy(st, nil) }

// setFloorBy is setFloor for a change made by actor (nil: another node or the store):
// when the change ends the meeting, actor's socket is left for its handler to close
// after it has replied. Caller holds m.mu.
func (m *meeting) setFloorBy(st rooms.FloorState, actor *session) {
	if st.Version < m.floor.Version || (st.Version == m.floor.Version && m.floor.MeetingID != "") {
		return // stale or already applied (a node sees its own change again via Watch)
	}
	m.floor = st
	wire := floorToWire(st)
	for _, o := range m.participants {
		o.reply(protocol.KindFloor, "", wire)
	}
	if st.Ended {
		for _, o := range m.participants {
			if o != actor {
				go o.close(protocol.CloseMeetingEnded, "the chair ended the meeting")
			}
		}
		return
	}
	m.reconcile()
}

// applyFloor runs a floor action for actor.
func (m *meeting) applyFloor(ctx context.Context, actor *session, fn func(*rooms.Floor) error) (rooms.FloorState, error) {
	if m.sched != nil {
		if f, ok := m.fence(); ok {
			ctx = rooms.WithFence(ctx, f)
		}
		st, err := m.srv.cfg.Store.UpdateFloor(ctx, string(m.id), fn)
		if err != nil {
			return st, err
		}
		m.mu.Lock()
		m.setFloorBy(st, actor)
		m.mu.Unlock()
		return st, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	f := rooms.RestoreFloor(m.adHoc(), m.floor)
	if err := fn(f); err != nil {
		return m.floor, err
	}
	m.setFloorBy(f.State(), actor)
	return m.floor, nil
}

// allowed says whether the floor lets st through now. Caller holds m.mu.
func (m *meeting) allowed(st *streamInfo) bool {
	media := m.floor.Allowed(st.owner.claims.Site)
	if st.source == protocol.SourceMicrophone {
		return media.Mic
	}
	return media.Camera // camera and the content channel
}

func floorToWire(st rooms.FloorState) *protocol.FloorState {
	w := &protocol.FloorState{Mode: string(st.Mode), ChairSite: st.ChairSite, Previous: st.Previous,
		MuteEpoch: st.MuteEpoch, Ended: st.Ended, Version: st.Version}
	for _, g := range st.Speakers {
		w.Speakers = append(w.Speakers, protocol.FloorGrantState{Site: g.Site, Mic: g.Mic, Camera: g.Camera, Since: g.Since})
	}
	for _, r := range st.Requests {
		w.Requests = append(w.Requests, protocol.FloorRequestState{Site: r.Site, At: r.At})
	}
	return w
}

func (s *session) handleFloorAction(env protocol.Envelope, a protocol.FloorAction) error {
	actor := rooms.Actor{Name: s.self.Name, Role: rooms.Role(s.claims.Role), Site: s.claims.Site}
	var fn func(*rooms.Floor) error
	switch a.Action {
	case protocol.FloorRequest:
		fn = func(f *rooms.Floor) error { return f.Request(actor) }
	case protocol.FloorWithdraw:
		fn = func(f *rooms.Floor) error { return f.Withdraw(actor) }
	case protocol.FloorYield:
		fn = func(f *rooms.Floor) error { return f.Yield(actor) }
	case protocol.FloorGrant:
		fn = func(f *rooms.Floor) error { return f.Grant(actor, a.Site, rooms.Media{Mic: a.Mic, Camera: a.Camera}) }
	case protocol.FloorDeny:
		fn = func(f *rooms.Floor) error { return f.Deny(actor, a.Site) }
	case protocol.FloorRevoke:
		fn = func(f *rooms.Floor) error { return f.Revoke(actor, a.Site) }
	case protocol.FloorMuteAll:
		fn = func(f *rooms.Floor) error { return f.MuteAll(actor) }
	case protocol.FloorSetMode:
		fn = func(f *rooms.Floor) error { return f.SetMode(actor, rooms.Mode(a.Mode)) }
	case protocol.FloorEnd:
		fn = func(f *rooms.Floor) error { return f.End(actor) }
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := s.meeting.applyFloor(ctx, s, fn)
	if err != nil {
		if errors.Is(err, rooms.ErrForbidden) {
			return clientErr(protocol.CodeForbidden, "%v", err)
		}
		var ce *rooms.ForbiddenError
		if errors.As(err, &ce) {
			return clientErr(protocol.CodeForbidden, "%v", err)
		}
		if errors.Is(err, rooms.ErrWrongMode) || errors.Is(err, rooms.ErrNotParticipant) || errors.Is(err, rooms.ErrNoRequest) ||
			errors.Is(err, rooms.ErrNotSpeaking) || errors.Is(err, rooms.ErrEnded) || errors.Is(err, rooms.ErrInvalidMode) ||
			errors.Is(err, rooms.ErrInvalidMedia) {
			return clientErr(protocol.CodeBadMessage, "%v", err)
		}
		return fmt.Errorf("floor %s: %w", a.Action, err)
	}
	s.srv.audit(s, "floor."+a.Action, a.Site)
	if a.Action == protocol.FloorEnd && s.meeting.sched != nil && s.srv.tree.Load() != nil {
		if _, err := rooms.NewScheduler(s.srv.cfg.Store, s.srv.tree.Load()).End(ctx, string(s.meeting.id)); err != nil {
			s.log.Error("mark meeting ended", "err", err)
		}
	}
	s.reply(protocol.KindFloor, env.ID, floorToWire(st))
	if st.Ended {
		// The chair's own socket closes last, after the reply to its request is queued
		// (the writer flushes what is queued before the close frame).
		go s.close(protocol.CloseMeetingEnded, "the chair ended the meeting")
	}
	return nil
}

// audit records an action in the store's audit log (scheduled meetings only).
func (srv *Server) audit(s *session, action, detail string) {
	if srv.cfg.Store == nil || s.meeting == nil || s.meeting.sched == nil {
		return
	}
	// Who acted comes from the verified token, never from the display name.
	e := rooms.AuditEntry{Time: time.Now().UTC(), Actor: s.claims.Principal(), Role: rooms.Role(s.claims.Role),
		Site: s.claims.Site, Action: action, Target: string(s.meeting.id), Detail: detail}
	s.meeting.record(func(ctx context.Context) error { return srv.cfg.Store.AppendAudit(ctx, e) })
}

// attend records an endpoint connecting or leaving, for the roll call.
func (m *meeting) attend(s *session, kind rooms.EventKind) {
	if m.sched == nil {
		return
	}
	e := rooms.AttendanceEvent{Time: time.Now().UTC(), MeetingID: string(m.id), Site: s.claims.Site,
		Endpoint: rollCallEndpoint(s), Kind: kind}
	m.record(func(ctx context.Context) error { return m.srv.cfg.Store.AppendAttendance(ctx, e) })
}

// record queues a store write on the meeting's writer goroutine, which keeps writes in
// order without holding the meeting's lock across disk or network I/O.
// Nothing is dropped: the queue is unbounded, and a write after the meeting stopped
// runs on its own goroutine (Server.Close waits for both).
func (m *meeting) record(write func(context.Context) error) {
	if f, ok := m.fence(); ok {
		w := write
		write = func(ctx context.Context) error { return w(rooms.WithFence(ctx, f)) }
	}
	m.writes.push(write, func(w func(context.Context) error) {
		m.srv.writers.Add(1)
		go func() {
			defer m.srv.writers.Done()
			if err := writeWithRetry(w); err != nil {
				m.srv.log.Error("store write", "meeting", m.id, "err", err)
			}
		}()
	})
}

func (m *meeting) writeLoop() {
	defer m.srv.writers.Done()
	m.writes.run(func(err error) {
		if errors.Is(err, rooms.ErrFenced) {
			m.srv.log.Warn("store write refused: the meeting passed to another node", "meeting", m.id, "err", err)
			return
		}
		m.srv.log.Error("store write", "meeting", m.id, "err", err)
	})
}

// fence is the fence the meeting's writes carry (issue 16): the token of the lease this
// node holds now, decided when the write is queued, so that a write queued before the
// lease was lost is refused by the store once another node has taken it. A node that no
// longer holds the lease writes under the last token it held.
func (m *meeting) fence() (rooms.Fence, bool) {
	o := m.srv.owners
	if o == nil {
		return rooms.Fence{}, false
	}
	if f, ok := o.fence(m.id); ok {
		m.lastFence.Store(&f)
		return f, true
	}
	if f := m.lastFence.Load(); f != nil {
		return *f, true
	}
	return rooms.Fence{}, false
}
