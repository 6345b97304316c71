package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cau-project/cau/rooms"
)

var (
	chairTW = rooms.Actor{Name: "Chủ tọa", Role: rooms.RoleChair, Site: "tw"}
	techTW  = rooms.Actor{Name: "Kỹ thuật", Role: rooms.RoleTechnician, Site: "tw"}
)

func participant(site string) rooms.Actor {
	return rooms.Actor{Name: "Đại biểu " + site, Role: rooms.RoleParticipant, Site: site}
}

// national is a meeting of every suite site, chaired by tw, in training mode.
func national(t testing.TB, id string) rooms.Meeting {
	var sites []string
	for _, s := range Tree(t).Sites() {
		sites = append(sites, s.ID)
	}
	return Meeting(id, 0, 2, sites...)
}

func requests(st rooms.FloorState) []string {
	var out []string
	for _, r := range st.Requests {
		out = append(out, r.Site)
	}
	return out
}

func testFloor(t *testing.T, s rooms.Store) {
	c := ctx(t)
	if _, err := s.Floor(c, "zz"); !errors.Is(err, rooms.ErrNotFound) {
		t.Errorf("Floor(unknown) err = %v", err)
	}
	if _, err := s.UpdateFloor(c, "zz", func(*rooms.Floor) error { return nil }); !errors.Is(err, rooms.ErrNotFound) {
		t.Errorf("UpdateFloor(unknown) err = %v", err)
	}
	m := national(t, "m")
	mustCreate(t, s, m)
	st, err := s.Floor(c, "m")
	if err != nil || st.Version != 0 || st.Mode != rooms.ModeTraining || st.ChairSite != "tw" || st.MeetingID != "m" {
		t.Fatalf("fresh floor = %+v, %v", st, err)
	}
	st, err = s.UpdateFloor(c, "m", func(f *rooms.Floor) error { return f.Request(participant("p1")) })
	if err != nil || !slices.Equal(requests(st), []string{"p1"}) || st.Version != 1 || st.UpdatedAt.IsZero() {
		t.Fatalf("after request: %+v, %v", st, err)
	}
	// A refused action stores nothing and its error comes back typed.
	_, err = s.UpdateFloor(c, "m", func(f *rooms.Floor) error { return f.End(techTW) })
	var fe *rooms.ForbiddenError
	if !errors.As(err, &fe) || fe.Action != rooms.ActionEnd {
		t.Errorf("technician ends: err = %v", err)
	}
	// An action and a failure in one update: all or nothing.
	_, err = s.UpdateFloor(c, "m", func(f *rooms.Floor) error {
		if err := f.Grant(chairTW, "p1", rooms.MicAndCamera); err != nil {
			return err
		}
		return f.Deny(chairTW, "p2") // p2 never asked
	})
	if !errors.Is(err, rooms.ErrNoRequest) {
		t.Errorf("grant+bad deny: err = %v", err)
	}
	if st, _ = s.Floor(c, "m"); len(st.Speakers) != 0 || st.Version != 1 {
		t.Errorf("failed update was stored: %+v", st)
	}
	// A no-op stores nothing either (same version).
	if st, err = s.UpdateFloor(c, "m", func(f *rooms.Floor) error { return f.Request(participant("p1")) }); err != nil || st.Version != 1 {
		t.Errorf("no-op: %+v, %v", st, err)
	}
	for _, step := range []func(f *rooms.Floor) error{
		func(f *rooms.Floor) error { return f.Grant(chairTW, "p1", rooms.MicAndCamera) },
		func(f *rooms.Floor) error { return f.Grant(chairTW, "p2", rooms.MicAndCamera) },
	} {
		if _, err := s.UpdateFloor(c, "m", step); err != nil {
			t.Fatal(err)
		}
	}
	st, _ = s.Floor(c, "m")
	if len(st.Speakers) != 1 || st.Speakers[0].Site != "p2" || st.Previous != "p1" || st.Version != 3 || len(st.Requests) != 0 {
		t.Errorf("after two grants: %+v", st)
	}
	if st.Allowed("p2") != rooms.MicAndCamera || st.Allowed("p1") != (rooms.Media{}) {
		t.Errorf("allowed: p2 %+v p1 %+v", st.Allowed("p2"), st.Allowed("p1"))
	}
}

// testConcurrentFloor has twenty sites ask for the floor at once: no request may be
// lost, whatever the backend's concurrency control.
func testConcurrentFloor(t *testing.T, s rooms.Store) {
	c := ctx(t)
	mustCreate(t, s, national(t, "m"))
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 1; i <= 20; i++ {
		wg.Go(func() {
			_, err := s.UpdateFloor(c, "m", func(f *rooms.Floor) error { return f.Request(participant(fmt.Sprintf("p2-c%02d", i))) })
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st, err := s.Floor(c, "m")
	if err != nil {
		t.Fatal(err)
	}
	got := requests(st)
	slices.Sort(got)
	var want []string
	for i := 1; i <= 20; i++ {
		want = append(want, fmt.Sprintf("p2-c%02d", i))
	}
	if !slices.Equal(got, want) || st.Version != 20 {
		t.Errorf("requests %v version %d; want all 20 at version 20", got, st.Version)
	}
}

func testAttendance(t *testing.T, s rooms.Store) {
	c := ctx(t)
	m := Meeting("m", 0, 2, "tw", "p1", "p2")
	mustCreate(t, s, m, Meeting("other", 0, 2, "p1-d1"))
	ev := func(min int, site string, kind rooms.EventKind, g rooms.Grade) rooms.AttendanceEvent {
		return rooms.AttendanceEvent{Time: Base.Add(time.Duration(min) * time.Minute), MeetingID: "m", Site: site,
			Endpoint: "room-" + site, Kind: kind, Grade: g}
	}
	events := []rooms.AttendanceEvent{
		ev(-30, "p1", rooms.EventConnected, ""),
		ev(0, "tw", rooms.EventConnected, ""),
		ev(10, "p1", rooms.EventGrade, rooms.GradePoor),
		ev(20, "p1", rooms.EventDisconnected, ""),
		ev(25, "p1", rooms.EventConnected, ""),
		ev(30, "p1", rooms.EventGrade, rooms.GradeGood),
	}
	for _, e := range events {
		if err := s.AppendAttendance(c, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AppendAttendance(c, rooms.AttendanceEvent{Time: Base, MeetingID: "other", Site: "p1-d1", Endpoint: "x", Kind: rooms.EventConnected}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Attendance(c, "m")
	if err != nil || len(got) != len(events) {
		t.Fatalf("Attendance = %d events, %v", len(got), err)
	}
	for i := range events {
		if !got[i].Time.Equal(events[i].Time) || got[i].Site != events[i].Site || got[i].Kind != events[i].Kind || got[i].Grade != events[i].Grade {
			t.Errorf("event %d = %+v, want %+v", i, got[i], events[i])
		}
	}
	recs, err := rooms.BuildRollCall(m, got, Base.Add(60*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	p1 := recs[1]
	if p1.Site != "p1" || p1.Drops != 1 || p1.Connected != 85*time.Minute || p1.WorstGrade != rooms.GradePoor || p1.LastGrade != rooms.GradeGood || !p1.Online {
		t.Errorf("p1 roll call %+v", p1)
	}
	if recs[2].Attended() {
		t.Errorf("p2 attended: %+v", recs[2])
	}
	if none, err := s.Attendance(c, "zz"); err != nil || len(none) != 0 {
		t.Errorf("Attendance(unknown) = %v, %v", none, err)
	}
	if err := s.AppendAttendance(c, rooms.AttendanceEvent{Time: Base, MeetingID: "zz", Site: "tw", Endpoint: "x", Kind: rooms.EventConnected}); !errors.Is(err, rooms.ErrNotFound) {
		t.Errorf("append to unknown meeting: err = %v", err)
	}
	if err := s.AppendAttendance(c, rooms.AttendanceEvent{Time: Base, MeetingID: "m", Site: "tw", Endpoint: "x", Kind: "joined"}); !errors.Is(err, rooms.ErrInvalidEvent) {
		t.Errorf("invalid event: err = %v", err)
	}
}

func testAudit(t *testing.T, s rooms.Store) {
	c := ctx(t)
	var all []rooms.AuditEntry
	for i := range 6 {
		e := rooms.NewAuditEntry(Base.Add(time.Duration(i)*time.Minute), chairTW, string(rooms.ActionGrant),
			[]string{"m1", "m2"}[i%2], fmt.Sprint("step ", i))
		all = append(all, e)
	}
	// Appended out of order: the log reads back in time order.
	for _, i := range []int{0, 1, 2, 5, 3, 4} {
		if err := s.AppendAudit(c, all[i]); err != nil {
			t.Fatal(err)
		}
	}
	details := func(es []rooms.AuditEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Detail)
		}
		return out
	}
	tests := []struct {
		name string
		q    rooms.AuditQuery
		want []int
	}{
		{"all", rooms.AuditQuery{}, []int{0, 1, 2, 3, 4, 5}},
		{"since", rooms.AuditQuery{Since: Base.Add(2 * time.Minute)}, []int{2, 3, 4, 5}},
		{"until", rooms.AuditQuery{Until: Base.Add(2 * time.Minute)}, []int{0, 1}},
		{"range", rooms.AuditQuery{Since: Base.Add(time.Minute), Until: Base.Add(4 * time.Minute)}, []int{1, 2, 3}},
		{"target", rooms.AuditQuery{Target: "m2"}, []int{1, 3, 5}},
		{"latest 2", rooms.AuditQuery{Limit: 2}, []int{4, 5}},
		{"latest 2 of m1", rooms.AuditQuery{Target: "m1", Limit: 2}, []int{2, 4}},
		{"latest 2 until", rooms.AuditQuery{Until: Base.Add(3 * time.Minute), Limit: 2}, []int{1, 2}},
		{"limit above count", rooms.AuditQuery{Since: Base.Add(4 * time.Minute), Limit: 10}, []int{4, 5}},
	}
	for _, tc := range tests {
		got, err := s.Audit(c, tc.q)
		var want []string
		for _, i := range tc.want {
			want = append(want, all[i].Detail)
		}
		if err != nil || !slices.Equal(details(got), want) {
			t.Errorf("%s: %v, %v; want %v", tc.name, details(got), err, want)
		}
	}
	got, _ := s.Audit(c, rooms.AuditQuery{Limit: 1})
	if len(got) != 1 || got[0] != all[5] {
		t.Errorf("entry round trip: %+v, want %+v", got, all[5])
	}
	if err := s.AppendAudit(c, rooms.AuditEntry{Actor: "x", Action: "join"}); err != nil {
		t.Fatal(err)
	}
	// Stamped with the store's clock (today), so before Base.
	if got, _ := s.Audit(c, rooms.AuditQuery{Until: Base}); len(got) != 1 || got[0].Actor != "x" || time.Since(got[0].Time) > time.Minute {
		t.Errorf("zero time not stamped: %+v", got)
	}
}
