package rooms

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Scheduler books meetings: it validates them against the site tree and refuses
// conflicts at sites with a room device, atomically in the store, so two operators (or
// two signaling nodes) cannot double-book a room.
type Scheduler struct {
	store ScheduleStore
	tree  atomic.Pointer[Tree] // swapped whole by SetTree; a Tree is immutable
	// now is the clock (time.Now unless replaced for tests); set before use, read-only after.
	now func() time.Time
}

// NewScheduler returns a scheduler over store for sites in tree.
func NewScheduler(store ScheduleStore, tree *Tree) *Scheduler {
	s := &Scheduler{store: store, now: time.Now}
	s.tree.Store(tree)
	return s
}

// SetTree replaces the site tree used for validation (after the operator edits it).
func (s *Scheduler) SetTree(t *Tree) { s.tree.Store(t) }

// Tree returns the current site tree.
func (s *Scheduler) Tree() *Tree { return s.tree.Load() }

// SetClock replaces the clock; call it before the scheduler is shared (tests).
func (s *Scheduler) SetClock(now func() time.Time) { s.now = now }

// NewMeetingID returns a fresh random meeting id such as "m-3f9a0c5e7b21".
func NewMeetingID() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "m-" + hex.EncodeToString(b[:])
}

// Schedule books a new meeting and returns it as stored (UTC times, defaults filled
// in, an id generated if empty). It refuses invalid meetings (ErrInvalidMeeting),
// meetings already over, and conflicts (*ConflictError, matching ErrConflict).
func (s *Scheduler) Schedule(ctx context.Context, m Meeting) (Meeting, error) {
	if m.ID == "" {
		m.ID = NewMeetingID()
	}
	m = m.Normalize()
	if err := s.book(ctx, m, s.store.CreateMeeting); err != nil {
		return Meeting{}, fmt.Errorf("schedule meeting %s: %w", m.ID, err)
	}
	m.State = StateScheduled
	return m, nil
}

// Reschedule replaces a scheduled meeting (times, sites, title, mode …) under the same
// rules as Schedule. A meeting that is over cannot change (ErrMeetingOver).
func (s *Scheduler) Reschedule(ctx context.Context, m Meeting) (Meeting, error) {
	m = m.Normalize()
	old, err := s.store.Meeting(ctx, m.ID)
	if err != nil {
		return Meeting{}, fmt.Errorf("reschedule meeting %s: %w", m.ID, err)
	}
	if old.Over() {
		return Meeting{}, fmt.Errorf("reschedule meeting %s: %w (%s)", m.ID, ErrMeetingOver, old.State)
	}
	if err := s.book(ctx, m, s.store.UpdateMeeting); err != nil {
		return Meeting{}, fmt.Errorf("reschedule meeting %s: %w", m.ID, err)
	}
	m.State = StateScheduled
	return m, nil
}

// book writes m as a scheduled meeting through write (the store's create or update),
// after the checks Schedule and Reschedule share: validity, and no conflict (the check
// the store runs again inside its transaction).
func (s *Scheduler) book(ctx context.Context, m Meeting, write func(context.Context, Meeting, CheckFunc) error) error {
	m.State = StateScheduled
	if err := s.vet(m); err != nil {
		return err
	}
	check, err := s.conflictCheck(ctx, m)
	if err != nil {
		return err
	}
	return write(ctx, m, check)
}

// Cancel calls a meeting off, freeing its sites. Cancelling a cancelled meeting is a
// no-op; an ended one cannot be cancelled.
func (s *Scheduler) Cancel(ctx context.Context, id string) (Meeting, error) {
	m, err := s.finish(ctx, id, StateCancelled)
	if err != nil {
		return Meeting{}, fmt.Errorf("cancel meeting %s: %w", id, err)
	}
	return m, nil
}

// End marks a meeting ended now (the chair closed it, see [Floor.End]). If it ends
// before its scheduled end, End is moved to now so its sites are free again.
func (s *Scheduler) End(ctx context.Context, id string) (Meeting, error) {
	m, err := s.finish(ctx, id, StateEnded)
	if err != nil {
		return Meeting{}, fmt.Errorf("end meeting %s: %w", id, err)
	}
	return m, nil
}

func (s *Scheduler) finish(ctx context.Context, id string, state MeetingState) (Meeting, error) {
	m, err := s.store.Meeting(ctx, id)
	if err != nil {
		return Meeting{}, err
	}
	if m.State == state {
		return m, nil
	}
	if m.Over() {
		return Meeting{}, fmt.Errorf("%w (%s)", ErrMeetingOver, m.State)
	}
	m.State = state
	// An over meeting no longer counts for conflicts or kiosks whatever its times; End
	// is moved only to record when a live meeting really ended (roll call uses it).
	if now := s.now().UTC(); state == StateEnded && now.After(m.Start) && now.Before(m.End) {
		m.End = now
	}
	if err := s.store.UpdateMeeting(ctx, m, nil); err != nil {
		return Meeting{}, err
	}
	return m, nil
}

// Next returns the endpoint's next meeting (see [NextMeeting]) at the scheduler's now.
// The kiosk page polls it; ok is false when nothing is booked for the endpoint's site.
func (s *Scheduler) Next(ctx context.Context, endpointID string) (p Plan, ok bool, err error) {
	e, err := s.store.Endpoint(ctx, endpointID)
	if err != nil {
		return Plan{}, false, fmt.Errorf("next meeting for %s: %w", endpointID, err)
	}
	now := s.now().UTC()
	ms, err := s.store.Meetings(ctx, now)
	if err != nil {
		return Plan{}, false, fmt.Errorf("next meeting for %s: %w", endpointID, err)
	}
	p, ok = NextMeeting(e, ms, now)
	return p, ok, nil
}

// vet validates m against the tree and refuses meetings that end in the past.
func (s *Scheduler) vet(m Meeting) error {
	if err := m.Validate(s.Tree()); err != nil {
		return err
	}
	if now := s.now(); !m.End.After(now) {
		return fmt.Errorf("%w: ends at %s, already past (now %s)", ErrInvalidMeeting, FormatLocal(m.End), FormatLocal(now))
	}
	return nil
}

// conflictCheck reads the room sites and returns the check the store runs in its
// transaction. Endpoints are read outside it: adding a room device does not re-check
// existing bookings either, and the registry changes rarely.
func (s *Scheduler) conflictCheck(ctx context.Context, m Meeting) (CheckFunc, error) {
	eps, err := s.store.Endpoints(ctx)
	if err != nil {
		return nil, err
	}
	rooms := RoomSites(eps)
	return func(others []Meeting) error {
		cs := Conflicts(m, others, rooms)
		switch len(cs) {
		case 0:
			return nil
		case 1:
			return cs[0]
		}
		errs := make([]error, len(cs))
		for i, c := range cs {
			errs[i] = c
		}
		return errors.Join(errs...)
	}, nil
}
