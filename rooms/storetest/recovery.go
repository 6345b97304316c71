package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/cau-project/cau/rooms"
)

// testCloseOpenSpans: after a crash, rooms.CloseOpenSpans closes each endpoint's open
// span at its last event, once (a second run closes nothing), and leaves closed spans,
// other meetings' closed spans and meetings ended before the horizon alone.
func testCloseOpenSpans(t *testing.T, s rooms.Store) {
	c := ctx(t)
	mustCreate(t, s, Meeting("m", 0, 2, "tw", "p1", "p2"), Meeting("old", -72, 2, "tw"))
	ev := func(meeting string, min int, ep string, kind rooms.EventKind, g rooms.Grade) rooms.AttendanceEvent {
		return rooms.AttendanceEvent{Time: Base.Add(time.Duration(min) * time.Minute), MeetingID: meeting, Site: "tw",
			Endpoint: ep, Kind: kind, Grade: g}
	}
	for _, e := range []rooms.AttendanceEvent{
		ev("m", 0, "a", rooms.EventConnected, ""),
		ev("m", 5, "b", rooms.EventConnected, ""),
		ev("m", 10, "a", rooms.EventGrade, rooms.GradeFair),
		ev("m", 20, "b", rooms.EventDisconnected, ""),
		ev("m", 25, "b", rooms.EventConnected, ""), // b came back and was lost with the node
		ev("old", -72*60, "z", rooms.EventConnected, ""),
	} {
		if err := s.AppendAttendance(c, e); err != nil {
			t.Fatal(err)
		}
	}
	n, err := rooms.CloseOpenSpans(c, s, Base.Add(-time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("CloseOpenSpans = %d, %v; want 2 (a and b of m)", n, err)
	}
	got, err := s.Attendance(c, "m")
	if err != nil {
		t.Fatal(err)
	}
	closedAt := map[string]time.Time{}
	for _, e := range got[5:] {
		if e.Kind != rooms.EventDisconnected {
			t.Errorf("appended %+v, want a disconnect", e)
		}
		closedAt[e.Endpoint] = e.Time
	}
	if want := Base.Add(10 * time.Minute); !closedAt["a"].Equal(want) {
		t.Errorf("a closed at %v, want its last grade %v", closedAt["a"], want)
	}
	if want := Base.Add(25 * time.Minute); !closedAt["b"].Equal(want) {
		t.Errorf("b closed at %v, want its reconnect %v", closedAt["b"], want)
	}
	if n, err := rooms.CloseOpenSpans(c, s, Base.Add(-time.Hour)); err != nil || n != 0 {
		t.Errorf("second run closed %d, %v; want 0", n, err)
	}
	if old, _ := s.Attendance(c, "old"); len(old) != 1 {
		t.Errorf("a meeting ended before the horizon was touched: %+v", old)
	}
}

// testAuditWithChange: an entry attached with rooms.WithAudit is written in the same
// transaction as the change, once, and not at all when the change fails.
func testAuditWithChange(t *testing.T, s rooms.Store) {
	c := ctx(t)
	actor := rooms.Actor{Name: "op", Role: rooms.RoleAdmin}
	entry := func(action, target string) rooms.AuditEntry {
		return rooms.NewAuditEntry(Base, actor, action, target, "")
	}
	ok := func(what string, pa *rooms.PendingAudit, err error) {
		t.Helper()
		if err != nil || !pa.Written() {
			t.Errorf("%s: %v, audit written %v", what, err, pa.Written())
		}
	}
	failed := func(what string, pa *rooms.PendingAudit, err error) {
		t.Helper()
		if err == nil || pa.Written() {
			t.Errorf("%s: %v, audit written %v; want an error and no entry", what, err, pa.Written())
		}
	}
	actx, pa := rooms.WithAudit(c, entry("replace_sites", "sites"))
	ok("SaveSites", pa, s.SaveSites(actx, Tree(t).Sites()))
	actx, pa = rooms.WithAudit(c, entry("create_endpoint", "e1"))
	ok("PutEndpoint", pa, s.PutEndpoint(actx, rooms.Endpoint{ID: "e1", Name: "E1", Site: "tw", Kind: rooms.KindRoom}))
	// The same context writes its entry once, with the first change only.
	ok("PutEndpoint again", pa, s.PutEndpoint(actx, rooms.Endpoint{ID: "e1", Name: "E1'", Site: "tw", Kind: rooms.KindRoom}))
	actx, pa = rooms.WithAudit(c, entry("delete_endpoint", "nope"))
	failed("DeleteEndpoint of nothing", pa, s.DeleteEndpoint(actx, "nope"))
	actx, pa = rooms.WithAudit(c, entry("delete_endpoint", "e1"))
	ok("DeleteEndpoint", pa, s.DeleteEndpoint(actx, "e1"))
	actx, pa = rooms.WithAudit(c, entry("schedule", "m"))
	ok("CreateMeeting", pa, s.CreateMeeting(actx, Meeting("m", 0, 1, "tw"), nil))
	actx, pa = rooms.WithAudit(c, entry("schedule", "m"))
	failed("CreateMeeting twice", pa, s.CreateMeeting(actx, Meeting("m", 0, 1, "tw"), nil))
	actx, pa = rooms.WithAudit(c, entry("reschedule", "m"))
	ok("UpdateMeeting", pa, s.UpdateMeeting(actx, Meeting("m", 1, 1, "tw"), nil))
	actx, pa = rooms.WithAudit(c, entry("delete", "m"))
	ok("DeleteMeeting", pa, s.DeleteMeeting(actx, "m"))
	got, err := s.Audit(c, rooms.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var log []string
	for _, e := range got {
		log = append(log, e.Action+" "+e.Target)
	}
	want := []string{"replace_sites sites", "create_endpoint e1", "delete_endpoint e1", "schedule m", "reschedule m", "delete m"}
	if !slices.Equal(log, want) {
		t.Errorf("audit log %q, want %q", log, want)
	}
}
