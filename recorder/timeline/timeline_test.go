package timeline

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/testkit"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/rooms/storetest"
)

var chair = rooms.Actor{Name: "Chủ tọa", Role: rooms.RoleChair, Site: "tw"}

func participant(site string) rooms.Actor {
	return rooms.Actor{Name: "Đại biểu " + site, Role: rooms.RoleParticipant, Site: site}
}

// summary renders events as "kind site" lines (layouts as "layout main/second").
func summary(events []Event) string {
	var b strings.Builder
	for _, e := range events {
		switch {
		case e.Layout != nil:
			fmt.Fprintf(&b, "%s %s/%s\n", e.Kind, e.Layout.Main, e.Layout.Second)
		case e.Detail != "":
			fmt.Fprintf(&b, "%s %s\n", e.Kind, e.Detail)
		default:
			fmt.Fprintf(&b, "%s %s\n", e.Kind, e.Site)
		}
	}
	return b.String()
}

// TestTimelineFollowsTheStore drives a meeting through a real store (bolt) the way
// signaling does (attendance events, floor updates) and checks that the timeline the
// writer keeps on disk tells the same story, with the speaker-view layout beside it.
func TestTimelineFollowsTheStore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, _ := testkit.Store(t)
	m := storetest.Meeting("m1", 0, 2, "tw", "p1", "p2")
	if err := s.CreateMeeting(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	attend := func(site string, kind rooms.EventKind) {
		t.Helper()
		e := rooms.AttendanceEvent{Time: time.Now(), MeetingID: "m1", Site: site, Endpoint: site + "-room", Kind: kind}
		if err := s.AppendAttendance(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	floor := func(fn func(*rooms.Floor) error) {
		t.Helper()
		if _, err := s.UpdateFloor(ctx, "m1", fn); err != nil {
			t.Fatal(err)
		}
	}
	attend("tw", rooms.EventConnected) // before the recording

	dir := t.TempDir()
	events, err := s.Attendance(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Floor(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	w, err := NewWriter(dir, "m1", "tw", t0, st, events)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Follow(ctx, s); err != nil {
		t.Fatal(err)
	}
	w.Note(RecordingStarted, "Chủ tọa", t0)

	attend("p1", rooms.EventConnected)
	attend("p2", rooms.EventConnected)
	floor(func(f *rooms.Floor) error { return f.Request(participant("p1")) })
	floor(func(f *rooms.Floor) error { return f.Grant(chair, "p1", rooms.MicAndCamera) })
	floor(func(f *rooms.Floor) error { return f.Grant(chair, "p2", rooms.MicAndCamera) }) // training: replaces p1
	attend("p1", rooms.EventDisconnected)
	floor(func(f *rooms.Floor) error { return f.SetMode(chair, rooms.ModeDiscussion) })

	want := `present tw
layout_changed tw/
recording_started Chủ tọa
joined p1
joined p2
floor_requested p1
floor_granted p1
layout_changed p1/tw
floor_released p1
floor_granted p2
layout_changed p2/tw
left p1
mode_changed discussion
floor_released p2
layout_changed tw/
`
	// Changes arrive through the watch, asynchronously; the file on disk is the record.
	testutil.Eventually(t, 10*time.Second, func() string {
		tl, err := Read(dir)
		if err != nil {
			return err.Error()
		}
		if got := summary(tl.Events); got != want {
			return "timeline so far:\n" + got
		}
		return ""
	})
	// Discussion mode: the site that talks is the speaker.
	at := time.Now()
	w.Speech("p2", true, at)
	w.Speech("p2", false, at.Add(3*time.Second))
	if err := w.Close(at.Add(4 * time.Second)); err != nil {
		t.Fatal(err)
	}
	tl, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	tail := summary(tl.Events[len(strings.Split(want, "\n"))-1:])
	if tail != "speech_started p2\nlayout_changed p2/tw\nspeech_ended p2\nlayout_changed tw/\n" {
		t.Errorf("after speech:\n%s", tail)
	}
	if l := tl.LayoutAt(tl.Events[len(tl.Events)-3].OffsetMs); l != (Layout{Main: "p2", Second: "tw"}) {
		t.Errorf("layout while p2 talks: %+v", l)
	}
	for i, e := range tl.Events {
		if i > 0 && e.Time.Before(tl.Events[i-1].Time) {
			t.Errorf("event %d (%s) before event %d", i, e.Kind, i-1)
		}
		if e.OffsetMs != e.Time.Sub(tl.Started).Milliseconds() {
			t.Errorf("event %d offset %d", i, e.OffsetMs)
		}
	}
}
