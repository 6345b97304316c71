package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cau-project/cau/rooms"
)

// Propagation is how soon a change must reach a watcher, on any node (issue 4: 1 s).
const Propagation = time.Second

// next waits up to Propagation for a change on ch that ok accepts, skipping others.
func next(t *testing.T, ch <-chan rooms.Change, what string, ok func(rooms.Change) bool) rooms.Change {
	t.Helper()
	deadline := time.After(Propagation)
	for {
		select {
		case c, open := <-ch:
			if !open {
				t.Fatalf("waiting for %s: watch channel closed", what)
			}
			if ok(c) {
				return c
			}
		case <-deadline:
			t.Fatalf("no %s within %v", what, Propagation)
		}
	}
}

// quiet checks nothing arrives on ch for a short while.
func quiet(t *testing.T, ch <-chan rooms.Change, why string) {
	t.Helper()
	select {
	case c := <-ch:
		t.Errorf("%s: got %+v", why, c)
	case <-time.After(100 * time.Millisecond):
	}
}

func testWatch(t *testing.T, s rooms.Store) {
	c := ctx(t)
	m := national(t, "m")
	mustCreate(t, s, m, national(t, "other"))
	wctx, stop := context.WithCancel(c)
	ch, err := s.Watch(wctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateFloor(c, "m", func(f *rooms.Floor) error { return f.Request(participant("p1")) }); err != nil {
		t.Fatal(err)
	}
	got := next(t, ch, "floor change", func(c rooms.Change) bool { return c.Kind == rooms.ChangeFloor })
	if got.MeetingID != "m" || got.Floor == nil || got.Floor.Version != 1 || !slices.Equal(requests(*got.Floor), []string{"p1"}) {
		t.Errorf("floor change %+v", got)
	}
	m.Title = "Đổi tên"
	if err := s.UpdateMeeting(c, m, nil); err != nil {
		t.Fatal(err)
	}
	got = next(t, ch, "meeting change", func(c rooms.Change) bool { return c.Kind == rooms.ChangeMeeting })
	if got.Meeting == nil || got.Meeting.Title != "Đổi tên" {
		t.Errorf("meeting change %+v", got)
	}
	e := rooms.AttendanceEvent{Time: Base, MeetingID: "m", Site: "p1", Endpoint: "room-p1", Kind: rooms.EventConnected}
	if err := s.AppendAttendance(c, e); err != nil {
		t.Fatal(err)
	}
	got = next(t, ch, "attendance change", func(c rooms.Change) bool { return c.Kind == rooms.ChangeAttendance })
	if got.Event == nil || got.Event.Site != "p1" || !got.Event.Time.Equal(Base) {
		t.Errorf("attendance change %+v", got)
	}
	// Changes to another meeting, and no-op updates, are not delivered.
	if _, err := s.UpdateFloor(c, "other", func(f *rooms.Floor) error { return f.Request(participant("p1")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateFloor(c, "m", func(f *rooms.Floor) error { return f.Request(participant("p1")) }); err != nil {
		t.Fatal(err)
	}
	quiet(t, ch, "other meeting or no-op")
	// A burst arrives in commit order: the last change received is the latest state.
	const burst = 10
	for i := 1; i <= burst; i++ {
		if _, err := s.UpdateFloor(c, "m", func(f *rooms.Floor) error { return f.Request(participant(fmt.Sprintf("p2-c%02d", i))) }); err != nil {
			t.Fatal(err)
		}
	}
	var last uint64
	got = next(t, ch, "the burst's last change", func(c rooms.Change) bool {
		if c.Floor.Version <= last {
			t.Errorf("version %d after %d: out of order", c.Floor.Version, last)
		}
		last = c.Floor.Version
		return c.Floor.Version == 1+burst
	})
	if len(got.Floor.Requests) != 1+burst {
		t.Errorf("last change has %d requests", len(got.Floor.Requests))
	}
	stop()
	deadline := time.After(Propagation)
	for open := true; open; {
		select {
		case _, open = <-ch:
		case <-deadline:
			t.Fatal("watch channel not closed after its context ended")
		}
	}
}

func testDeleteMeeting(t *testing.T, s rooms.Store) {
	c := ctx(t)
	mustCreate(t, s, national(t, "m"))
	ch, err := s.Watch(c, "m")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateFloor(c, "m", func(f *rooms.Floor) error { return f.Request(participant("p1")) }); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAttendance(c, rooms.AttendanceEvent{Time: Base, MeetingID: "m", Site: "p1", Endpoint: "e", Kind: rooms.EventConnected}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMeeting(c, "m"); err != nil {
		t.Fatal(err)
	}
	next(t, ch, "deletion", func(c rooms.Change) bool { return c.Kind == rooms.ChangeMeeting && c.Meeting == nil })
	if err := s.DeleteMeeting(c, "m"); !errors.Is(err, rooms.ErrNotFound) {
		t.Errorf("delete twice: err = %v", err)
	}
	if _, err := s.Floor(c, "m"); !errors.Is(err, rooms.ErrNotFound) {
		t.Errorf("floor after delete: err = %v", err)
	}
	if ev, _ := s.Attendance(c, "m"); len(ev) != 0 {
		t.Errorf("%d attendance events after delete", len(ev))
	}
	if ms, _ := s.Meetings(c, Base.Add(-48*time.Hour)); len(ms) != 0 {
		t.Errorf("index still lists %v", ids(ms))
	}
	// The id can be used again, with a fresh floor.
	mustCreate(t, s, national(t, "m"))
	if st, _ := s.Floor(c, "m"); st.Version != 0 || len(st.Requests) != 0 {
		t.Errorf("recreated meeting inherited floor %+v", st)
	}
}

func testClosed(t *testing.T, s rooms.Store) {
	c := ctx(t)
	ch, err := s.Watch(c, "m")
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, national(t, "m"))
	// Take the creation's change first: with Redis it arrives asynchronously and may
	// still be on its way when Close starts, which is not a delivery after close.
	select {
	case <-ch:
	case <-time.After(Propagation):
		t.Fatal("the meeting's creation was not delivered")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, open := <-ch:
		if open {
			t.Error("watch delivered after close")
		}
	case <-time.After(Propagation):
		t.Error("watch channel not closed by Close")
	}
	if _, err := s.Meeting(c, "m"); !errors.Is(err, rooms.ErrClosed) {
		t.Errorf("Meeting after Close: err = %v", err)
	}
	if _, err := s.UpdateFloor(c, "m", func(*rooms.Floor) error { return nil }); !errors.Is(err, rooms.ErrClosed) {
		t.Errorf("UpdateFloor after Close: err = %v", err)
	}
	if _, err := s.Watch(c, "m"); !errors.Is(err, rooms.ErrClosed) {
		t.Errorf("Watch after Close: err = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// RunReopen writes one of everything, closes the store, opens a new one on the same
// storage and checks that nothing was lost.
func RunReopen(t *testing.T, newBacking NewBacking) {
	open := newBacking(t)
	s := open()
	c := ctx(t)
	tree := Tree(t)
	if err := s.SaveSites(c, tree.Sites()); err != nil {
		t.Fatal(err)
	}
	for _, e := range Endpoints {
		if err := s.PutEndpoint(c, e); err != nil {
			t.Fatal(err)
		}
	}
	m := national(t, "m")
	mustCreate(t, s, m, Meeting("later", 24, 1, "p2"))
	st, err := s.UpdateFloor(c, "m", func(f *rooms.Floor) error {
		if err := f.Request(participant("p1")); err != nil {
			return err
		}
		if err := f.Request(participant("p2")); err != nil {
			return err
		}
		return f.Grant(chairTW, "p2", rooms.MicAndCamera)
	})
	if err != nil {
		t.Fatal(err)
	}
	ev := rooms.AttendanceEvent{Time: Base, MeetingID: "m", Site: "p1", Endpoint: "room-p1", Kind: rooms.EventConnected}
	if err := s.AppendAttendance(c, ev); err != nil {
		t.Fatal(err)
	}
	audit := rooms.NewAuditEntry(Base, chairTW, "grant", "m", "p2")
	if err := s.AppendAudit(c, audit); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open()
	defer s.Close()
	if got, err := rooms.StoredTree(c, s); err != nil || !slices.Equal(got.Sites(), tree.Sites()) {
		t.Errorf("site tree after reopen: %v", err)
	}
	if eps, err := s.Endpoints(c); err != nil || len(eps) != len(Endpoints) {
		t.Errorf("endpoints after reopen: %v, %v", eps, err)
	}
	if got, err := s.Meeting(c, "m"); err != nil || !sameMeeting(got, m.Normalize()) {
		t.Errorf("meeting after reopen: %+v, %v", got, err)
	}
	if ms, err := s.Meetings(c, Base); err != nil || !slices.Equal(ids(ms), []string{"m", "later"}) {
		t.Errorf("meetings after reopen: %v, %v", ids(ms), err)
	}
	if got, err := s.Floor(c, "m"); err != nil || fmt.Sprint(got) != fmt.Sprint(st) {
		t.Errorf("floor after reopen:\n got %+v, %v\nwant %+v", got, err, st)
	}
	ev.Time = ev.Time.UTC() // stored in UTC
	if got, err := s.Attendance(c, "m"); err != nil || len(got) != 1 || got[0] != ev {
		t.Errorf("attendance after reopen: %+v, %v", got, err)
	}
	if got, err := s.Audit(c, rooms.AuditQuery{}); err != nil || len(got) != 1 || got[0] != audit {
		t.Errorf("audit after reopen: %+v, %v", got, err)
	}
}

// RunTwoNodes opens two stores on the same storage, as two signaling nodes would, and
// checks that each sees the other's writes and floor changes within Propagation, and
// that concurrent floor updates from both nodes are all kept.
func RunTwoNodes(t *testing.T, newBacking NewBacking) {
	open := newBacking(t)
	a, b := open(), open()
	defer a.Close()
	defer b.Close()
	c := ctx(t)
	mustCreate(t, a, national(t, "m"))
	if _, err := b.Meeting(c, "m"); err != nil {
		t.Fatalf("node b does not see node a's meeting: %v", err)
	}
	chB, err := b.Watch(c, "m")
	if err != nil {
		t.Fatal(err)
	}
	chA, err := a.Watch(c, "m")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := a.UpdateFloor(c, "m", func(f *rooms.Floor) error { return f.Request(participant("p1")) }); err != nil {
		t.Fatal(err)
	}
	got := next(t, chB, "node a's floor change on node b", func(c rooms.Change) bool { return c.Kind == rooms.ChangeFloor })
	t.Logf("floor change crossed nodes in %v", time.Since(start))
	if got.Floor.Version != 1 || !slices.Equal(requests(*got.Floor), []string{"p1"}) {
		t.Errorf("node b got %+v", got.Floor)
	}
	if _, err := b.UpdateFloor(c, "m", func(f *rooms.Floor) error { return f.Grant(chairTW, "p1", rooms.MicAndCamera) }); err != nil {
		t.Fatal(err)
	}
	got = next(t, chA, "node b's grant on node a", func(c rooms.Change) bool { return c.Kind == rooms.ChangeFloor && c.Floor.Version == 2 })
	if len(got.Floor.Speakers) != 1 || got.Floor.Speakers[0].Site != "p1" {
		t.Errorf("node a got %+v", got.Floor)
	}
	// Ten requests through each node at once: all twenty kept.
	var wg sync.WaitGroup
	for i := 1; i <= 20; i++ {
		s := a
		if i%2 == 0 {
			s = b
		}
		wg.Go(func() {
			if _, err := s.UpdateFloor(c, "m", func(f *rooms.Floor) error { return f.Request(participant(fmt.Sprintf("p2-c%02d", i))) }); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, s := range []rooms.Store{a, b} {
		if st, err := s.Floor(c, "m"); err != nil || len(st.Requests) != 20 || st.Version != 22 {
			t.Errorf("after concurrent requests: %d requests, version %d, %v", len(st.Requests), st.Version, err)
		}
	}
	next(t, chB, "the last concurrent change on node b", func(c rooms.Change) bool { return c.Kind == rooms.ChangeFloor && c.Floor.Version == 22 })
}
