package rooms

import (
	"context"
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
