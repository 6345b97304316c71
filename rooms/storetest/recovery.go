package storetest

import (
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
