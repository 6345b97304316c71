package rooms_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/rooms"
)

func TestRollCall(t *testing.T) {
	m := rooms.Meeting{ID: "m1", Title: "Họp", ChairSite: "tw", Sites: []string{"tw", "p1", "p2", "p1-d1"},
		Start: at(t, 8, 0), End: at(t, 10, 0)}.Normalize()
	ev := func(h, min int, site, ep string, kind rooms.EventKind, g rooms.Grade) rooms.AttendanceEvent {
		return rooms.AttendanceEvent{Time: at(t, h, min), MeetingID: "m1", Site: site, Endpoint: ep, Kind: kind, Grade: g}
	}
	const (
		on, off, grade = rooms.EventConnected, rooms.EventDisconnected, rooms.EventGrade
	)
	events := []rooms.AttendanceEvent{
		ev(7, 10, "p1", "r1", on, ""),
		ev(7, 30, "p1", "r1", off, ""), // during the test window: not a drop
		ev(7, 45, "p1", "r1", on, ""),
		ev(7, 50, "p1", "l1", on, ""),
		ev(8, 20, "p1", "r1", off, ""), // the laptop is still on: site stays connected
		ev(8, 30, "p1", "r1", grade, rooms.GradePoor),
		ev(8, 40, "p1", "l1", off, ""), // site dark during the meeting: a drop
		ev(8, 45, "p1", "r1", on, ""),
		ev(9, 0, "p1", "r1", grade, rooms.GradeGood),
		ev(10, 5, "p1", "r1", off, ""), // after the end: not a drop

		ev(8, 0, "p2", "r2", on, ""),
		ev(8, 30, "p2", "r2", grade, rooms.GradeLost),
		ev(8, 31, "p2", "r2", off, ""),
		ev(8, 35, "p2", "r2", on, ""),
		ev(8, 36, "p2", "r2", grade, rooms.GradeFair),

		ev(8, 0, "p1-d1", "r3", on, ""),
		ev(8, 5, "p1-d1", "r3", on, ""),  // repeated: no effect
		ev(8, 6, "p1-d1", "x9", off, ""), // never connected: ignored
		ev(8, 10, "p1-d1", "r3", off, ""),

		ev(8, 0, "p2-d1", "guest", on, ""),                                            // not invited: listed after the meeting's sites
		{Time: at(t, 8, 0), MeetingID: "other", Site: "tw", Endpoint: "r0", Kind: on}, // another meeting
	}
	// Shuffle the order: BuildRollCall sorts by time.
	shuffled := slices.Clone(events)
	slices.Reverse(shuffled)
	recs, err := rooms.BuildRollCall(m, shuffled, at(t, 9, 0))
	if err != nil {
		t.Fatal(err)
	}
	want := []rooms.SiteRecord{
		{Site: "tw"},
		{Site: "p1", FirstJoined: at(t, 7, 10), LastLeft: at(t, 10, 5), Connected: 155 * time.Minute, Drops: 1,
			WorstGrade: rooms.GradePoor, LastGrade: rooms.GradeGood, Endpoints: 2},
		{Site: "p2", FirstJoined: at(t, 8, 0), LastLeft: at(t, 8, 31), Connected: 56 * time.Minute, Drops: 1,
			WorstGrade: rooms.GradeLost, LastGrade: rooms.GradeFair, Online: true, Endpoints: 1},
		{Site: "p1-d1", FirstJoined: at(t, 8, 0), LastLeft: at(t, 8, 10), Connected: 10 * time.Minute, Drops: 1, Endpoints: 2},
		{Site: "p2-d1", FirstJoined: at(t, 8, 0), Connected: time.Hour, Online: true, Endpoints: 1},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d: %+v", len(recs), len(want), recs)
	}
	for i := range want {
		g, w := recs[i], want[i]
		if g.Site != w.Site || !g.FirstJoined.Equal(w.FirstJoined) || !g.LastLeft.Equal(w.LastLeft) || g.Connected != w.Connected ||
			g.Drops != w.Drops || g.WorstGrade != w.WorstGrade || g.LastGrade != w.LastGrade || g.Online != w.Online || g.Endpoints != w.Endpoints {
			t.Errorf("record %d\n got %+v\nwant %+v", i, g, w)
		}
	}
	if recs[0].Attended() || !recs[1].Attended() {
		t.Error("Attended wrong")
	}
	// Asked later, an open span keeps growing; closed ones do not.
	later, _ := rooms.BuildRollCall(m, events, at(t, 9, 30))
	if later[2].Connected != 86*time.Minute || later[1].Connected != 155*time.Minute {
		t.Errorf("at 09:30: p2 %v p1 %v", later[2].Connected, later[1].Connected)
	}
}

func TestRollCallIncremental(t *testing.T) {
	m := rooms.Meeting{ID: "m1", ChairSite: "tw", Sites: []string{"tw"}, Start: at(t, 8, 0), End: at(t, 10, 0)}
	rc := rooms.NewRollCall(m)
	add := func(min int, kind rooms.EventKind) {
		t.Helper()
		if err := rc.Add(rooms.AttendanceEvent{Time: at(t, 8, min), MeetingID: "m1", Site: "tw", Endpoint: "r", Kind: kind}); err != nil {
			t.Fatal(err)
		}
	}
	add(10, rooms.EventConnected)
	add(5, rooms.EventDisconnected) // late and out of order: applied at 08:10, zero length
	add(20, rooms.EventConnected)
	r := rc.Records(at(t, 8, 30))[0]
	if r.Connected != 10*time.Minute || r.Drops != 1 || !r.Online || !r.FirstJoined.Equal(at(t, 8, 10)) {
		t.Errorf("record %+v", r)
	}
	bad := []rooms.AttendanceEvent{
		{Time: at(t, 8, 0), MeetingID: "m1", Site: "tw", Kind: rooms.EventConnected},
		{Time: at(t, 8, 0), MeetingID: "m1", Site: "tw", Endpoint: "r", Kind: "left"},
		{Time: at(t, 8, 0), MeetingID: "m1", Site: "tw", Endpoint: "r", Kind: rooms.EventGrade, Grade: "great"},
		{MeetingID: "m1", Site: "tw", Endpoint: "r", Kind: rooms.EventConnected},
	}
	for _, e := range bad {
		if err := rc.Add(e); !errors.Is(err, rooms.ErrInvalidEvent) {
			t.Errorf("Add(%+v) = %v, want ErrInvalidEvent", e, err)
		}
	}
}

func TestGradeSeverity(t *testing.T) {
	order := []rooms.Grade{"", rooms.GradeGood, rooms.GradeFair, rooms.GradePoor, rooms.GradeLost}
	for i := 1; i < len(order); i++ {
		if order[i].Severity() <= order[i-1].Severity() {
			t.Errorf("%q not worse than %q", order[i], order[i-1])
		}
	}
}

func TestRollCallCSV(t *testing.T) {
	tree := mustTree(t, fourLevelYAML)
	recs := []rooms.SiteRecord{
		{Site: "p2-d1-c1", FirstJoined: at(t, 8, 0), LastLeft: at(t, 9, 1), Connected: 61*time.Minute + 30*time.Second,
			Drops: 2, WorstGrade: rooms.GradePoor, LastGrade: rooms.GradeFair, Endpoints: 1},
		{Site: "tw"},
		{Site: "not-in-tree", FirstJoined: at(t, 7, 0), Online: true},
	}
	var buf bytes.Buffer
	if err := rooms.WriteRollCallCSV(&buf, recs, tree); err != nil {
		t.Fatal(err)
	}
	raw := buf.String()
	wantRaw := "site,name,level,attended,first_joined,last_left,connected_seconds,drops,worst_grade,last_grade,online,endpoints\r\n" +
		`p2-d1-c1,"Xã Bốn, ""quoted""",commune,true,2026-03-02T08:00:00+07:00,2026-03-02T09:01:00+07:00,3690,2,poor,fair,false,1` + "\r\n" +
		"tw,Trung ương,central,false,,,0,0,,,false,0\r\n" +
		"not-in-tree,,,true,2026-03-02T07:00:00+07:00,,0,0,,,true,0\r\n"
	if raw != wantRaw {
		t.Errorf("CSV:\n%s\nwant:\n%s", raw, wantRaw)
	}
	rows, err := csv.NewReader(strings.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || rows[1][1] != `Xã Bốn, "quoted"` || !slices.Equal(rows[0], rooms.RollCallCSVHeader) {
		t.Errorf("round trip: %q", rows)
	}
}
