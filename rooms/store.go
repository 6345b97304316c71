package rooms

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// CheckFunc vets a meeting against the other meetings that might overlap it, inside the
// store's write transaction, so that two nodes cannot both book the same room. The
// store passes every meeting (other than the one being written) whose End is after the
// new meeting's WindowStart; returning an error aborts the write. A store may call it
// more than once (optimistic retries), so it must have no side effects.
type CheckFunc func(others []Meeting) error

// EndpointStore keeps the endpoint registry.
type EndpointStore interface {
	// PutEndpoint creates or replaces an endpoint.
	PutEndpoint(ctx context.Context, e Endpoint) error
	// Endpoint returns one endpoint, or an error matching ErrNotFound.
	Endpoint(ctx context.Context, id string) (Endpoint, error)
	// Endpoints returns all endpoints, by id.
	Endpoints(ctx context.Context) ([]Endpoint, error)
	// DeleteEndpoint removes an endpoint; ErrNotFound if there is none.
	DeleteEndpoint(ctx context.Context, id string) error
}

// MeetingStore keeps meetings.
type MeetingStore interface {
	// CreateMeeting stores a new meeting after check (may be nil) accepts it; an error
	// matching ErrExists if the id is taken.
	CreateMeeting(ctx context.Context, m Meeting, check CheckFunc) error
	// UpdateMeeting replaces a meeting after check (may be nil) accepts it; ErrNotFound
	// if there is none.
	UpdateMeeting(ctx context.Context, m Meeting, check CheckFunc) error
	// Meeting returns one meeting, or an error matching ErrNotFound.
	Meeting(ctx context.Context, id string) (Meeting, error)
	// Meetings returns the meetings whose End is after endAfter (zero: all), ordered
	// by Start then id.
	Meetings(ctx context.Context, endAfter time.Time) ([]Meeting, error)
	// DeleteMeeting removes a meeting with its floor state and attendance events (the
	// audit log keeps its entries); ErrNotFound if there is none.
	DeleteMeeting(ctx context.Context, id string) error
}

// ScheduleStore is what a [Scheduler] needs.
type ScheduleStore interface {
	EndpointStore
	MeetingStore
}

// SiteStore keeps the site tree. The store does not validate the tree; build a [Tree]
// with [NewTree] before saving and after loading.
type SiteStore interface {
	// SaveSites replaces the whole tree with sites, atomically, keeping their order.
	SaveSites(ctx context.Context, sites []Site) error
	// Sites returns the saved sites in the order saved (none if never saved).
	Sites(ctx context.Context) ([]Site, error)
}

// FloorStore keeps each meeting's floor state.
type FloorStore interface {
	// Floor returns the meeting's floor state; a fresh one (version 0) if the floor was
	// never touched, or an error matching ErrNotFound if there is no such meeting.
	Floor(ctx context.Context, meetingID string) (FloorState, error)
	// UpdateFloor runs fn on the meeting's floor inside one transaction and stores the
	// result if fn returns nil and changed the state; it returns the state after. If fn
	// fails nothing is stored and its error is returned (wrapped). Concurrent updates
	// from any node are serialised; fn may run more than once (optimistic retries), so
	// it must only act on the Floor it is given. Watchers get a ChangeFloor.
	UpdateFloor(ctx context.Context, meetingID string, fn func(*Floor) error) (FloorState, error)
}

// AttendanceStore keeps the raw attendance events of each meeting; [BuildRollCall]
// turns them into the roll call.
type AttendanceStore interface {
	// AppendAttendance validates and stores an event of an existing meeting (ErrNotFound
	// if none). Watchers get a ChangeAttendance.
	AppendAttendance(ctx context.Context, e AttendanceEvent) error
	// Attendance returns a meeting's events in the order appended.
	Attendance(ctx context.Context, meetingID string) ([]AttendanceEvent, error)
}

// AuditStore keeps the append-only audit log.
type AuditStore interface {
	// AppendAudit stores an entry; a zero Time is set to now.
	AppendAudit(ctx context.Context, e AuditEntry) error
	// Audit returns the entries q selects, oldest first.
	Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error)
}

// ChangeKind says what changed in a [Change].
type ChangeKind string

// Change kinds.
const (
	ChangeFloor      ChangeKind = "floor"      // the floor state changed; Floor is set
	ChangeMeeting    ChangeKind = "meeting"    // the meeting was written (Meeting set) or deleted (nil)
	ChangeAttendance ChangeKind = "attendance" // an attendance event was appended; Event is set
)

// Change tells watchers of a meeting what changed, with the new value.
type Change struct {
	MeetingID string           `json:"meeting_id"`
	Kind      ChangeKind       `json:"kind"`
	Floor     *FloorState      `json:"floor,omitempty"`
	Meeting   *Meeting         `json:"meeting,omitempty"`
	Event     *AttendanceEvent `json:"event,omitempty"`
}

// Clone returns a deep copy, so each watcher gets its own.
func (c Change) Clone() Change {
	if c.Floor != nil {
		f := c.Floor.Clone()
		c.Floor = &f
	}
	if c.Meeting != nil {
		m := *c.Meeting
		m.Sites = slices.Clone(m.Sites)
		c.Meeting = &m
	}
	if c.Event != nil {
		e := *c.Event
		c.Event = &e
	}
	return c
}

// Watcher notifies changes to a meeting.
type Watcher interface {
	// Watch delivers the changes to meetingID committed after it returns, on any node
	// sharing the store, until ctx ends or the store closes (then the channel closes).
	// A slow reader loses the oldest undelivered changes, never the latest: each Change
	// carries the full new value, so the last one received is current. With Redis a
	// dropped connection can lose changes made while it was down; re-read on reconnect.
	Watch(ctx context.Context, meetingID string) (<-chan Change, error)
}

// Store is Cầu's durable state: the registry, the schedule, floor states, attendance
// and the audit log, plus change notification. Implementations: rooms/store/bolt
// (embedded, default) and rooms/store/redis (several signaling nodes); both pass
// rooms/storetest. All methods are safe for concurrent use.
type Store interface {
	SiteStore
	EndpointStore
	MeetingStore
	FloorStore
	AttendanceStore
	AuditStore
	Watcher
	// Close releases the store; later calls fail with an error matching ErrClosed and
	// watch channels close.
	Close() error
}

// StoredTree loads the saved sites and builds the tree; an error matching ErrNoRoot if
// none were saved.
func StoredTree(ctx context.Context, s SiteStore) (*Tree, error) {
	sites, err := s.Sites(ctx)
	if err != nil {
		return nil, err
	}
	t, err := NewTree(sites)
	if err != nil {
		return nil, fmt.Errorf("stored site tree: %w", err)
	}
	return t, nil
}
