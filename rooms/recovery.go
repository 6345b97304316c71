package rooms

import (
	"context"
	"fmt"
	"time"
)

// SpanStore is what [CloseOpenSpans] needs of a store.
type SpanStore interface {
	Meetings(ctx context.Context, endAfter time.Time) ([]Meeting, error)
	AttendanceStore
}

// CloseOpenSpans ends the attendance spans a crash left open. A node that dies writes no
// disconnect for its endpoints, so the roll call would count them online forever. For
// every meeting ending after endAfter, each endpoint whose last connect has no
// disconnect gets one, dated at its last event (its connect or last grade: the last
// moment it was known to be there). It returns how many spans it closed.
//
// Call it at start-up, before the node admits endpoints, and only where no other live
// node shares the store (its endpoints' spans are open because they are connected).
func CloseOpenSpans(ctx context.Context, s SpanStore, endAfter time.Time) (int, error) {
	ms, err := s.Meetings(ctx, endAfter)
	if err != nil {
		return 0, fmt.Errorf("close open spans: %w", err)
	}
	closed := 0
	for _, m := range ms {
		evs, err := s.Attendance(ctx, m.ID)
		if err != nil {
			return closed, fmt.Errorf("close open spans of meeting %s: %w", m.ID, err)
		}
		for _, sp := range OpenSpans(evs) {
			e := AttendanceEvent{Time: sp.Last, MeetingID: m.ID, Site: sp.Site, Endpoint: sp.Endpoint, Kind: EventDisconnected}
			if err := s.AppendAttendance(ctx, e); err != nil {
				return closed, fmt.Errorf("close span of %s in meeting %s: %w", sp.Endpoint, m.ID, err)
			}
			closed++
		}
	}
	return closed, nil
}

// OpenSpan is an endpoint's attendance span that no disconnect has closed.
type OpenSpan struct {
	Endpoint, Site string
	// Since is its connect; Last its last event (the connect or a later grade), the last
	// moment the endpoint was known to be there.
	Since, Last time.Time
}

// OpenSpans returns the spans a meeting's events (in the order the store keeps them)
// leave open, in the order they opened.
func OpenSpans(evs []AttendanceEvent) []OpenSpan {
	open := map[string]*OpenSpan{} // endpoint → its open span
	var order []string             // endpoints in the order they connected
	for _, e := range evs {
		sp, on := open[e.Endpoint]
		switch e.Kind {
		case EventConnected:
			if !on {
				order = append(order, e.Endpoint)
				open[e.Endpoint] = &OpenSpan{Endpoint: e.Endpoint, Site: e.Site, Since: e.Time, Last: e.Time}
			} else if e.Time.After(sp.Last) {
				sp.Last = e.Time
			}
		case EventDisconnected:
			delete(open, e.Endpoint)
		case EventGrade:
			if on && e.Time.After(sp.Last) {
				sp.Last = e.Time
			}
		}
	}
	var out []OpenSpan
	for _, ep := range order {
		if sp, on := open[ep]; on {
			delete(open, ep) // an endpoint that reconnected is listed twice in order
			out = append(out, *sp)
		}
	}
	return out
}
