package signaling

import (
	"context"
	"fmt"
	"time"

	"github.com/cau-project/cau/presence"
	"github.com/cau-project/cau/rooms"
)

// DefaultRollCallGrace is how long a node that took a meeting over waits before it
// closes the roll-call spans the previous owner left open (Config.RollCallGrace). Its
// endpoints come back within seconds (clients resume through a live node; the bridges
// keep their media flowing for 10 s meanwhile), and one that came back keeps its span.
const DefaultRollCallGrace = 15 * time.Second

// repairSpansLater closes, after the grace, the roll-call spans of the meeting's
// endpoints that a crashed owner left open (issue 12, finding 7, with several signaling
// nodes). Called once when this node creates the live meeting as the holder of its
// lease: no other node runs it, so a span opened before now whose endpoint is not here
// once the grace is over belongs to an endpoint that went with the old owner. Its
// disconnect is dated now, when this node took the meeting: until then the bridges kept
// its media flowing.
func (m *meeting) repairSpansLater() {
	if m.sched == nil || m.srv.cfg.Leases == nil || m.srv.cfg.Store == nil {
		return
	}
	took := time.Now().UTC()
	grace := m.srv.cfg.RollCallGrace
	if grace <= 0 {
		grace = DefaultRollCallGrace
	}
	time.AfterFunc(grace, func() {
		srv := m.srv
		srv.mu.Lock() // Close waits for the writers queued before it marks the server closed
		defer srv.mu.Unlock()
		if !srv.closed {
			m.record(func(ctx context.Context) error { return m.closeAbsentSpans(ctx, took) })
		}
	})
}

// closeAbsentSpans appends a disconnect, dated took, for each endpoint whose span opened
// before took and that is not in the meeting now. It runs on the meeting's writer, so a
// connect this node queued before it is in the store, and one queued after it is later.
func (m *meeting) closeAbsentSpans(ctx context.Context, took time.Time) error {
	store := m.srv.cfg.Store
	evs, err := store.Attendance(ctx, string(m.id))
	if err != nil {
		return fmt.Errorf("roll call repair: %w", err)
	}
	m.mu.Lock()
	here := make(map[string]bool, len(m.participants))
	for _, s := range m.participants {
		here[rollCallEndpoint(s)] = true
	}
	m.mu.Unlock()
	closed := 0
	for _, sp := range rooms.OpenSpans(evs) {
		if here[sp.Endpoint] || !sp.Since.Before(took) {
			continue
		}
		e := rooms.AttendanceEvent{Time: took, MeetingID: string(m.id), Site: sp.Site, Endpoint: sp.Endpoint,
			Kind: rooms.EventDisconnected}
		if err := store.AppendAttendance(ctx, e); err != nil {
			return fmt.Errorf("roll call repair: close %s's span: %w", sp.Endpoint, err)
		}
		closed++
	}
	if closed > 0 {
		m.srv.log.Warn("roll call: closed the spans of endpoints lost with the meeting's previous node",
			"meeting", m.id, "spans", closed, "at", took)
	}
	return nil
}

// rollCallEndpoint is the endpoint s's attendance is recorded under: the room's endpoint,
// else the participant.
func rollCallEndpoint(s *session) string {
	if s.claims.Endpoint != "" {
		return s.claims.Endpoint
	}
	return s.self.ID
}

// attendLost records in the roll call a participant lost with its crashed node (a
// presence event with Lost set; issue 12, finding 7), unless its endpoint is in the
// meeting again, here or on another node (a room that came back keeps its span). The
// disconnect is dated at ev.At, when the node was last known alive (never before the
// endpoint's connect, which its node wrote before announcing it). Caller holds m.mu.
func (m *meeting) attendLost(ev presence.Event) {
	if m.sched == nil || ev.Endpoint == "" {
		return
	}
	for _, s := range m.participants {
		if rollCallEndpoint(s) == ev.Endpoint {
			return
		}
	}
	for id, o := range m.remote {
		if id != ev.Participant.ID && o.Endpoint == ev.Endpoint {
			return
		}
	}
	e := rooms.AttendanceEvent{Time: ev.At.UTC(), MeetingID: string(m.id), Site: ev.Participant.Site,
		Endpoint: ev.Endpoint, Kind: rooms.EventDisconnected}
	m.record(func(ctx context.Context) error { return m.srv.cfg.Store.AppendAttendance(ctx, e) })
	m.srv.log.Warn("roll call: an endpoint lost with its signaling node is recorded disconnected",
		"meeting", m.id, "endpoint", ev.Endpoint, "site", e.Site, "at", e.Time)
}
