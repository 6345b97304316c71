// Package storetest is the one test suite every [rooms.Store] implementation must pass.
// A backend's test calls [Run] with a constructor for fresh, empty stores, [RunReopen]
// to check that nothing is lost across a restart, and, if several processes can share
// its storage, [RunTwoNodes].
package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cau-project/cau/rooms"
)

// NewStore returns a fresh, empty store; the backend closes it in t.Cleanup.
type NewStore func(t *testing.T) rooms.Store

// NewBacking prepares empty storage (a file, a Redis prefix) and returns a function that
// opens a new store on it each time it is called. The test closes what it opens.
type NewBacking func(t *testing.T) (open func() rooms.Store)

// Run runs the suite; each subtest gets its own store from newStore.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s rooms.Store)
	}{
		{"Sites", testSites},
		{"Endpoints", testEndpoints},
		{"Meetings", testMeetings},
		{"MeetingCheck", testMeetingCheck},
		{"Scheduler", testScheduler},
		{"ConcurrentScheduling", testConcurrentScheduling},
		{"Floor", testFloor},
		{"ConcurrentFloor", testConcurrentFloor},
		{"Attendance", testAttendance},
		{"CloseOpenSpans", testCloseOpenSpans},
		{"AuditWithChange", testAuditWithChange},
		{"Audit", testAudit},
		{"Watch", testWatch},
		{"DeleteMeeting", testDeleteMeeting},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// ctx is a test context that gives up well before the test binary's timeout.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// Tree is the suite's site tree: central, a province with a district and two communes,
// and a province with twenty communes (the post-2025 shape), 26 sites.
func Tree(t testing.TB) *rooms.Tree {
	sites := []rooms.Site{
		{ID: "tw", Name: "Trung ương", Level: rooms.LevelCentral},
		{ID: "p1", Name: "Tỉnh Một", Level: rooms.LevelProvince, Parent: "tw"},
		{ID: "p1-d1", Name: "Huyện Một", Level: rooms.LevelDistrict, Parent: "p1"},
		{ID: "p1-d1-c1", Name: "Xã Một", Level: rooms.LevelCommune, Parent: "p1-d1"},
		{ID: "p1-d1-c2", Name: "Xã Hai", Level: rooms.LevelCommune, Parent: "p1-d1"},
		{ID: "p2", Name: "Tỉnh Hai", Level: rooms.LevelProvince, Parent: "tw"},
	}
	for i := 1; i <= 20; i++ {
		sites = append(sites, rooms.Site{ID: fmt.Sprintf("p2-c%02d", i), Name: fmt.Sprintf("Xã %d", i), Level: rooms.LevelCommune, Parent: "p2"})
	}
	tree, err := rooms.NewTree(sites)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// Endpoints are the suite's endpoints: rooms at tw, p1, p1-d1-c1 and p2, a laptop at
// p1-d1-c2.
var Endpoints = []rooms.Endpoint{
	{ID: "room-tw", Name: "Phòng họp Chính phủ", Site: "tw", Kind: rooms.KindRoom},
	{ID: "room-p1", Name: "Hội trường tỉnh", Site: "p1", Kind: rooms.KindRoom},
	{ID: "room-p1-d1-c1", Name: "Phòng họp xã", Site: "p1-d1-c1", Kind: rooms.KindRoom},
	{ID: "room-p2", Name: "Hội trường tỉnh 2", Site: "p2", Kind: rooms.KindRoom},
	{ID: "laptop-c2", Name: "Máy xách tay", Site: "p1-d1-c2", Kind: rooms.KindLaptop},
}

// Base is 08:00 on Monday 7 January 2030 in Vietnam: far enough ahead that meetings
// built from it are in the future.
var Base = time.Date(2030, 1, 7, 8, 0, 0, 0, rooms.Zone())

// Meeting returns a valid meeting from Base+startH hours lasting hours, chaired by the
// first site.
func Meeting(id string, startH, hours float64, sites ...string) rooms.Meeting {
	start := Base.Add(time.Duration(startH * float64(time.Hour)))
	return rooms.Meeting{ID: id, Title: "Họp " + id, ChairSite: sites[0], Sites: sites, Mode: rooms.ModeTraining,
		Start: start, End: start.Add(time.Duration(hours * float64(time.Hour)))}
}

func mustCreate(t *testing.T, s rooms.Store, ms ...rooms.Meeting) {
	t.Helper()
	for _, m := range ms {
		if err := s.CreateMeeting(ctx(t), m, nil); err != nil {
			t.Fatalf("CreateMeeting(%s): %v", m.ID, err)
		}
	}
}

func sameMeeting(a, b rooms.Meeting) bool {
	return a.ID == b.ID && a.Title == b.Title && a.ChairSite == b.ChairSite && slices.Equal(a.Sites, b.Sites) &&
		a.Start.Equal(b.Start) && a.End.Equal(b.End) && a.Mode == b.Mode && a.TestWindow == b.TestWindow && a.State == b.State
}

func ids(ms []rooms.Meeting) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func testSites(t *testing.T, s rooms.Store) {
	got, err := s.Sites(ctx(t))
	if err != nil || len(got) != 0 {
		t.Fatalf("empty store: Sites = %v, %v", got, err)
	}
	if _, err := rooms.StoredTree(ctx(t), s); !errors.Is(err, rooms.ErrNoRoot) {
		t.Errorf("StoredTree of an empty store: err = %v", err)
	}
	want := Tree(t).Sites()
	if err := s.SaveSites(ctx(t), want); err != nil {
		t.Fatal(err)
	}
	got, err = s.Sites(ctx(t))
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Sites = %v, %v; want %v", got, err, want)
	}
	if _, err := rooms.NewTree(got); err != nil {
		t.Errorf("loaded sites do not build a tree: %v", err)
	}
	// Saving again replaces the whole set.
	smaller := want[:3]
	if err := s.SaveSites(ctx(t), smaller); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.Sites(ctx(t)); !slices.Equal(got, smaller) {
		t.Errorf("after replace: %v", got)
	}
}

func testEndpoints(t *testing.T, s rooms.Store) {
	c := ctx(t)
	if _, err := s.Endpoint(c, "room-tw"); !errors.Is(err, rooms.ErrNotFound) {
		t.Errorf("missing endpoint: err = %v", err)
	}
	for _, e := range slices.Backward(Endpoints) {
		if err := s.PutEndpoint(c, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Endpoints(c)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b rooms.Endpoint) int { return cmp.Compare(a.ID, b.ID) })
	want := slices.Clone(Endpoints)
	slices.SortFunc(want, func(a, b rooms.Endpoint) int { return cmp.Compare(a.ID, b.ID) })
	if !slices.Equal(got, want) {
		t.Errorf("Endpoints = %v, want %v", got, want)
	}
	e := Endpoints[1]
	e.Name = "Hội trường mới"
	if err := s.PutEndpoint(c, e); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Endpoint(c, e.ID); err != nil || got != e {
		t.Errorf("after replace: %v, %v", got, err)
	}
	if err := s.DeleteEndpoint(c, e.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteEndpoint(c, e.ID); !errors.Is(err, rooms.ErrNotFound) {
		t.Errorf("delete twice: err = %v", err)
	}
	if all, _ := s.Endpoints(c); len(all) != len(Endpoints)-1 {
		t.Errorf("%d endpoints after delete", len(all))
	}
	if err := s.PutEndpoint(c, rooms.Endpoint{Site: "tw", Kind: rooms.KindRoom}); !errors.Is(err, rooms.ErrEmptyID) {
		t.Errorf("empty id: err = %v", err)
	}
}

func testMeetings(t *testing.T, s rooms.Store) {
	c := ctx(t)
	a := Meeting("a", 0, 2, "tw", "p1")
	b := Meeting("b", 4, 1, "p1", "p1-d1")
	early := Meeting("early", -48, 1, "p2")
	mustCreate(t, s, b, a, early)
	if err := s.CreateMeeting(c, a, nil); !errors.Is(err, rooms.ErrExists) {
		t.Errorf("create twice: err = %v", err)
	}
	got, err := s.Meeting(c, "a")
	if err != nil || !sameMeeting(got, a.Normalize()) {
		t.Fatalf("Meeting(a) = %+v, %v", got, err)
	}
	if got.Start.Location() != time.UTC {
		t.Errorf("stored start %v is not UTC", got.Start)
	}
	if got.Start.In(rooms.Zone()).Hour() != 8 || got.TestWindow != rooms.DefaultTestWindow {
		t.Errorf("start %v, window %v", got.Start, got.TestWindow)
	}
	if _, err := s.Meeting(c, "zz"); !errors.Is(err, rooms.ErrNotFound) {
		t.Errorf("missing meeting: err = %v", err)
	}
	all, err := s.Meetings(c, time.Time{})
	if err != nil || !slices.Equal(ids(all), []string{"early", "a", "b"}) {
		t.Errorf("Meetings(all) = %v, %v", ids(all), err)
	}
	for _, tc := range []struct {
		after time.Time
		want  []string
	}{
		{Base.Add(-24 * time.Hour), []string{"a", "b"}},
		{Base.Add(2 * time.Hour), []string{"b"}}, // a ends exactly then: not after
		{Base.Add(5 * time.Hour), []string{}},
	} {
		got, err := s.Meetings(c, tc.after)
		if err != nil || !slices.Equal(ids(got), tc.want) {
			t.Errorf("Meetings(after %v) = %v, %v; want %v", tc.after, ids(got), err, tc.want)
		}
	}
	// Moving a meeting moves it in the end-time index too.
	a.End = a.End.Add(4 * time.Hour)
	a.Title = "Họp a (kéo dài)"
	if err := s.UpdateMeeting(c, a, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Meetings(c, Base.Add(5*time.Hour)); !slices.Equal(ids(got), []string{"a"}) {
		t.Errorf("after moving a: %v", ids(got))
	}
	if got, _ := s.Meeting(c, "a"); got.Title != a.Title {
		t.Errorf("title %q", got.Title)
	}
	if err := s.UpdateMeeting(c, Meeting("zz", 0, 1, "tw"), nil); !errors.Is(err, rooms.ErrNotFound) {
		t.Errorf("update missing: err = %v", err)
	}
	bad := Meeting("bad", 0, 1, "tw")
	bad.End = bad.Start
	if err := s.CreateMeeting(c, bad, nil); !errors.Is(err, rooms.ErrInvalidMeeting) {
		t.Errorf("invalid meeting stored: err = %v", err)
	}
}

func testMeetingCheck(t *testing.T, s rooms.Store) {
	c := ctx(t)
	mustCreate(t, s,
		Meeting("before", -3, 1, "tw"),   // ends 06:00, before the new window opens at 07:00
		Meeting("touching", -2, 1, "tw"), // ends 07:00: not after the window start
		Meeting("overlap", -1.5, 1, "tw"),
		Meeting("after", 5, 1, "tw"),
	)
	m := Meeting("new", 0, 2, "tw")
	var seen []string
	err := s.CreateMeeting(c, m, func(others []rooms.Meeting) error {
		seen = ids(others)
		return nil
	})
	slices.Sort(seen)
	if err != nil || !slices.Equal(seen, []string{"after", "overlap"}) {
		t.Errorf("check saw %v (err %v), want the meetings ending after 07:00", seen, err)
	}
	// Updating passes the others, not the meeting itself.
	seen = nil
	if err := s.UpdateMeeting(c, m, func(others []rooms.Meeting) error { seen = ids(others); return nil }); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(seen, "new") {
		t.Errorf("update check saw the meeting itself: %v", seen)
	}
	refuse := errors.New("refused")
	if err := s.CreateMeeting(c, Meeting("no", 0, 1, "tw"), func([]rooms.Meeting) error { return refuse }); !errors.Is(err, refuse) {
		t.Errorf("refused create: err = %v", err)
	}
	if _, err := s.Meeting(c, "no"); !errors.Is(err, rooms.ErrNotFound) {
		t.Errorf("refused meeting was stored: %v", err)
	}
	moved := m
	moved.Title = "changed"
	if err := s.UpdateMeeting(c, moved, func([]rooms.Meeting) error { return refuse }); !errors.Is(err, refuse) {
		t.Errorf("refused update: err = %v", err)
	}
	if got, _ := s.Meeting(c, "new"); got.Title != m.Title {
		t.Errorf("refused update was stored: %q", got.Title)
	}
}

// scheduler returns a scheduler over s with the suite's tree and endpoints, its clock
// at Base minus a day.
func scheduler(t *testing.T, s rooms.Store) *rooms.Scheduler {
	for _, e := range Endpoints {
		if err := s.PutEndpoint(ctx(t), e); err != nil {
			t.Fatal(err)
		}
	}
	sch := rooms.NewScheduler(s, Tree(t))
	sch.SetClock(func() time.Time { return Base.Add(-24 * time.Hour) })
	return sch
}

func testScheduler(t *testing.T, s rooms.Store) {
	c := ctx(t)
	sch := scheduler(t, s)
	tree := sch.Tree()
	sites, err := tree.Select(rooms.Selection{Root: "p1", Levels: []rooms.Level{rooms.LevelCommune}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := sch.Schedule(c, rooms.Meeting{Title: "Giao ban tỉnh", ChairSite: "p1", Sites: sites,
		Start: Base, End: Base.Add(2 * time.Hour), Mode: rooms.ModeTraining})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == "" || a.State != rooms.StateScheduled || !slices.Equal(a.Sites, []string{"p1", "p1-d1-c1", "p1-d1-c2"}) {
		t.Errorf("scheduled %+v", a)
	}
	// The room at p1-d1-c1 is taken from 07:00 (test window) to 10:00.
	clash := rooms.Meeting{ID: "clash", Title: "Họp xã", ChairSite: "p1-d1-c1", Sites: []string{"p1-d1-c1", "p1-d1-c2"},
		Start: Base.Add(2 * time.Hour), End: Base.Add(3 * time.Hour)}
	_, err = sch.Schedule(c, clash)
	var ce *rooms.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, rooms.ErrConflict) || ce.With != a.ID || !slices.Equal(ce.Sites, []string{"p1-d1-c1"}) {
		t.Fatalf("clash: err = %v", err)
	}
	// Only the laptop's site shared: no conflict.
	if _, err := sch.Schedule(c, rooms.Meeting{ID: "laptop", Title: "Họp", ChairSite: "p1-d1-c2", Sites: []string{"p1-d1-c2"},
		Start: Base, End: Base.Add(time.Hour)}); err != nil {
		t.Errorf("laptop-only overlap refused: %v", err)
	}
	// A 30-minute test window after a's end fits.
	clash.TestWindow = 30 * time.Minute
	clash.Start, clash.End = Base.Add(150*time.Minute), Base.Add(4*time.Hour)
	if _, err := sch.Schedule(c, clash); err != nil {
		t.Errorf("adjacent meeting refused: %v", err)
	}
	// Rescheduling a onto clash's slot conflicts; back to its own slot does not.
	moved := a
	moved.Start, moved.End = Base.Add(3*time.Hour), Base.Add(5*time.Hour)
	if _, err := sch.Reschedule(c, moved); !errors.Is(err, rooms.ErrConflict) {
		t.Errorf("reschedule into conflict: err = %v", err)
	}
	if _, err := sch.Reschedule(c, a); err != nil {
		t.Errorf("reschedule in place: %v", err)
	}
	// Validation and the past.
	if _, err := sch.Schedule(c, rooms.Meeting{Title: "x", ChairSite: "tw", Sites: []string{"p1"}, Start: Base, End: Base.Add(time.Hour)}); !errors.Is(err, rooms.ErrInvalidMeeting) {
		t.Errorf("chair outside: err = %v", err)
	}
	if _, err := sch.Schedule(c, rooms.Meeting{Title: "x", ChairSite: "zz", Sites: []string{"zz"}, Start: Base, End: Base.Add(time.Hour)}); !errors.Is(err, rooms.ErrUnknownSite) {
		t.Errorf("unknown site: err = %v", err)
	}
	if _, err := sch.Schedule(c, rooms.Meeting{Title: "x", ChairSite: "tw", Sites: []string{"tw"}, Start: Base.Add(-50 * time.Hour), End: Base.Add(-49 * time.Hour)}); !errors.Is(err, rooms.ErrInvalidMeeting) {
		t.Errorf("past meeting: err = %v", err)
	}
	// The kiosk at p1-d1-c1: before the window, then inside it.
	p, ok, err := sch.Next(c, "room-p1-d1-c1")
	if err != nil || !ok || p.Meeting.ID != a.ID || p.ConnectNow {
		t.Errorf("Next a day before = %+v, %v, %v", p, ok, err)
	}
	sch.SetClock(func() time.Time { return Base.Add(-30 * time.Minute) })
	if p, ok, _ = sch.Next(c, "room-p1-d1-c1"); !ok || p.Meeting.ID != a.ID || !p.ConnectNow {
		t.Errorf("Next in the test window = %+v", p)
	}
	if _, _, err := sch.Next(c, "nope"); !errors.Is(err, rooms.ErrNotFound) {
		t.Errorf("Next(unknown) err = %v", err)
	}
	// Ending a at 09:00 frees its room from then on and stops the kiosk.
	sch.SetClock(func() time.Time { return Base.Add(time.Hour) })
	ended, err := sch.End(c, a.ID)
	if err != nil || ended.State != rooms.StateEnded || !ended.End.Equal(Base.Add(time.Hour)) {
		t.Fatalf("End = %+v, %v", ended, err)
	}
	if p, ok, _ := sch.Next(c, "room-p1-d1-c1"); ok && p.Meeting.ID == a.ID {
		t.Errorf("kiosk still sent to the ended meeting")
	}
	if _, err := sch.Reschedule(c, a); !errors.Is(err, rooms.ErrMeetingOver) {
		t.Errorf("reschedule ended: err = %v", err)
	}
	if _, err := sch.Cancel(c, a.ID); !errors.Is(err, rooms.ErrMeetingOver) {
		t.Errorf("cancel ended: err = %v", err)
	}
	// Cancelling frees the room for another booking.
	sch.SetClock(func() time.Time { return Base.Add(-24 * time.Hour) })
	b, err := sch.Schedule(c, rooms.Meeting{Title: "b", ChairSite: "p2", Sites: []string{"p2"}, Start: Base.Add(24 * time.Hour), End: Base.Add(25 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sch.Schedule(c, rooms.Meeting{ID: "b2", Title: "b2", ChairSite: "p2", Sites: []string{"p2"}, Start: b.Start, End: b.End}); !errors.Is(err, rooms.ErrConflict) {
		t.Fatalf("double booking p2: err = %v", err)
	}
	if got, err := sch.Cancel(c, b.ID); err != nil || got.State != rooms.StateCancelled {
		t.Fatalf("Cancel = %+v, %v", got, err)
	}
	if _, err := sch.Schedule(c, rooms.Meeting{ID: "b2", Title: "b2", ChairSite: "p2", Sites: []string{"p2"}, Start: b.Start, End: b.End}); err != nil {
		t.Errorf("after cancel: %v", err)
	}
}

// testConcurrentScheduling races several bookings of one room: exactly one must win,
// on any backend, however its transactions work.
func testConcurrentScheduling(t *testing.T, s rooms.Store) {
	c := ctx(t)
	sch := scheduler(t, s)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = sch.Schedule(c, rooms.Meeting{ID: fmt.Sprint("race-", i), Title: "race", ChairSite: "p2",
				Sites: []string{"p2", fmt.Sprintf("p2-c%02d", i+1)}, Start: Base, End: Base.Add(time.Hour)})
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, rooms.ErrConflict):
			t.Errorf("booking %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d bookings of one room won, want exactly 1 (errors %v)", won, errs)
	}
	if all, _ := s.Meetings(c, time.Time{}); len(all) != 1 {
		t.Errorf("%d meetings stored", len(all))
	}
}
