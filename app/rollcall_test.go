package app_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/testkit"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/rooms/store/bolt"
)

// TestRollCallRecordsGrades runs a scheduled meeting: the roll call gets the site's
// connection and, from the link monitor, its grade.
func TestRollCallRecordsGrades(t *testing.T) {
	ctx := context.Background()
	a, store, m := startHop(t, "")
	for _, site := range []string{"tw", "xa"} {
		if err := join(t, a, auth.Claims{Site: site}).Publish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	var kinds []string
	for time.Now().Before(deadline) {
		evs, err := store.Attendance(ctx, "hop")
		if err != nil {
			t.Fatal(err)
		}
		kinds = kinds[:0]
		for _, e := range evs {
			if e.Site == "xa" {
				kinds = append(kinds, fmt.Sprintf("%s%s", e.Kind, e.Grade))
			}
		}
		if len(kinds) >= 2 && kinds[0] == "connected" && kinds[1] == "gradegood" {
			recs, err := rooms.BuildRollCall(m, evs, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Site == "xa" && (r.LastGrade != rooms.GradeGood || !r.Online) {
					t.Fatalf("roll call for xa: %+v, want online and good", r)
				}
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("xa's attendance events %v, want connected then a good grade", kinds)
}

// TestStartClosesSpansLeftOpenByACrash: a node that crashed left a site "connected" in
// the roll call with no disconnect. The next start closes the span at the last moment
// the site was known to be there, so the record says when it was lost instead of
// counting it online forever.
func TestStartClosesSpansLeftOpenByACrash(t *testing.T) {
	ctx := context.Background()
	store, tree := twoSiteStore(t, filepath.Join(t.TempDir(), "cau.db"))
	defer store.Close()
	now := time.Now().UTC()
	m := hop(now.Add(-time.Hour), "")
	testkit.Schedule(t, store, tree, m)
	// What the crashed node wrote: xa connected and was graded; tw came and went.
	lastSeen := now.Add(-10 * time.Minute)
	for _, e := range []rooms.AttendanceEvent{
		{Time: now.Add(-50 * time.Minute), MeetingID: "hop", Site: "xa", Endpoint: "room-xa", Kind: rooms.EventConnected},
		{Time: lastSeen, MeetingID: "hop", Site: "xa", Endpoint: "room-xa", Kind: rooms.EventGrade, Grade: rooms.GradeGood},
		{Time: now.Add(-40 * time.Minute), MeetingID: "hop", Site: "tw", Endpoint: "p1", Kind: rooms.EventConnected},
		{Time: now.Add(-30 * time.Minute), MeetingID: "hop", Site: "tw", Endpoint: "p1", Kind: rooms.EventDisconnected},
	} {
		if err := store.AppendAttendance(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	a := startOn(t, store, tree, testutil.Logger())
	defer a.Close()
	evs, err := store.Attendance(ctx, "hop")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := rooms.BuildRollCall(m, evs, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Site == "xa" && (r.Online || r.Connected > 41*time.Minute) {
			t.Errorf("xa after restart: online %v, connected %v; want offline since its last sign of life (40 min)", r.Online, r.Connected)
		}
	}
	var closes int
	for _, e := range evs {
		if e.Kind == rooms.EventDisconnected {
			closes++
			if e.Site == "xa" && !e.Time.Equal(lastSeen) {
				t.Errorf("xa's span closed at %v, want its last event %v", e.Time, lastSeen)
			}
		}
	}
	if closes != 2 {
		t.Errorf("%d disconnects, want 2 (tw's own and xa's closed at start-up): %+v", closes, evs)
	}
}

// TestCloseKeepsRollCall: a server that stops (a deploy, a restart) writes the
// disconnects of the sites it closes before it returns, so the store closed right after
// still has them: no roll-call or audit record is lost to a stop.
func TestCloseKeepsRollCall(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cau.db")
	store, tree := twoSiteStore(t, path)
	testkit.Schedule(t, store, tree, hop(time.Now().Add(-time.Minute), ""))
	log := testutil.Logger()
	a := startOn(t, store, tree, log)
	for _, site := range []string{"tw", "xa"} {
		join(t, a, auth.Claims{Site: site})
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, _ := store.Attendance(ctx, "hop")
		if len(evs) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connects not recorded: %+v", evs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = a.Close()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	reopened, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	evs, err := reopened.Attendance(ctx, "hop")
	if err != nil {
		t.Fatal(err)
	}
	left := map[string]bool{}
	for _, e := range evs {
		if e.Kind == rooms.EventDisconnected {
			left[e.Site] = true
		}
	}
	if !left["tw"] || !left["xa"] {
		t.Fatalf("after the stop the store has %+v, want both sites' disconnects", evs)
	}
}
