package bolt_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cau-project/cau/rooms"
)

// TestGiaLaiMeeting runs a whole provincial meeting of Gia Lai's 258 sites through the
// embedded store: schedule it, refuse a clash, tell a kiosk to connect, let every
// commune ask for the floor at once, and export the roll call.
func TestGiaLaiMeeting(t *testing.T) {
	ctx := context.Background()
	tree, err := rooms.LoadTreeFile(filepath.Join("..", "..", "..", "deploy", "examples", "gia-lai.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, filepath.Join(t.TempDir(), "cau.db"))
	defer s.Close()
	if err := s.SaveSites(ctx, tree.Sites()); err != nil {
		t.Fatal(err)
	}
	for _, site := range tree.Sites() {
		if err := s.PutEndpoint(ctx, rooms.Endpoint{ID: "room-" + site.ID, Name: "Phòng họp " + site.Name, Site: site.ID, Kind: rooms.KindRoom}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Date(2030, 3, 4, 8, 0, 0, 0, rooms.Zone())
	sch := rooms.NewScheduler(s, tree)
	sch.SetClock(func() time.Time { return start.Add(-24 * time.Hour) })
	sites, err := tree.Select(rooms.Selection{Root: "gl"})
	if err != nil || len(sites) != 258 {
		t.Fatalf("selected %d sites, %v", len(sites), err)
	}
	m, err := sch.Schedule(ctx, rooms.Meeting{Title: "Hội nghị trực tuyến toàn tỉnh", ChairSite: "gl", Sites: sites,
		Start: start, End: start.Add(3 * time.Hour), Mode: rooms.ModeTraining})
	if err != nil {
		t.Fatal(err)
	}
	// A district meeting that overlaps the test window clashes at its 24 sites.
	district, _ := tree.Select(rooms.Selection{Root: "gl-d01"})
	_, err = sch.Schedule(ctx, rooms.Meeting{Title: "Giao ban huyện", ChairSite: "gl-d01", Sites: district,
		Start: start.Add(-2 * time.Hour), End: start.Add(-30 * time.Minute)})
	var ce *rooms.ConflictError
	if !errors.As(err, &ce) || len(ce.Sites) != 24 || ce.With != m.ID || !strings.Contains(err.Error(), "and 19 more") {
		t.Fatalf("clash: %v", err)
	}
	sch.SetClock(func() time.Time { return start.Add(-45 * time.Minute) })
	if p, ok, err := sch.Next(ctx, "room-gl-d05-c03"); err != nil || !ok || !p.ConnectNow || p.Meeting.ID != m.ID {
		t.Fatalf("kiosk plan %+v %v %v", p, ok, err)
	}

	// Every commune asks for the floor at once; the chair then gives it to one.
	communes, _ := tree.Select(rooms.Selection{Root: "gl", Levels: []rooms.Level{rooms.LevelCommune}})
	communes = communes[1:] // Select always includes the root
	var wg sync.WaitGroup
	for _, c := range communes {
		wg.Go(func() {
			if _, err := s.UpdateFloor(ctx, m.ID, func(f *rooms.Floor) error {
				return f.Request(rooms.Actor{Role: rooms.RoleRoom, Site: c})
			}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	chair := rooms.Actor{Name: "Chủ tịch UBND tỉnh", Role: rooms.RoleChair, Site: "gl"}
	st, err := s.UpdateFloor(ctx, m.ID, func(f *rooms.Floor) error { return f.Grant(chair, "gl-d07-c02", rooms.MicAndCamera) })
	if err != nil || len(st.Requests) != 219 || st.Speakers[0].Site != "gl-d07-c02" {
		t.Fatalf("floor: %d requests, %+v, %v", len(st.Requests), st.Speakers, err)
	}

	// Everyone joins in the test window; one commune drops for five minutes.
	for i, site := range sites {
		ev := rooms.AttendanceEvent{Time: start.Add(-time.Hour + time.Duration(i)*time.Second), MeetingID: m.ID,
			Site: site, Endpoint: "room-" + site, Kind: rooms.EventConnected}
		if err := s.AppendAttendance(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	for _, ev := range []rooms.AttendanceEvent{
		{Time: start.Add(time.Hour), MeetingID: m.ID, Site: "gl-d12-c04", Endpoint: "room-gl-d12-c04", Kind: rooms.EventDisconnected},
		{Time: start.Add(time.Hour + 5*time.Minute), MeetingID: m.ID, Site: "gl-d12-c04", Endpoint: "room-gl-d12-c04", Kind: rooms.EventConnected},
	} {
		if err := s.AppendAttendance(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	events, err := s.Attendance(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := rooms.BuildRollCall(m, events, m.End)
	if err != nil {
		t.Fatal(err)
	}
	drops := 0
	for _, r := range recs {
		drops += r.Drops
		if !r.Attended() {
			t.Errorf("%s did not attend", r.Site)
		}
	}
	if len(recs) != 258 || drops != 1 {
		t.Errorf("%d records, %d drops", len(recs), drops)
	}
	var csv bytes.Buffer
	if err := rooms.WriteRollCallCSV(&csv, recs, tree); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(csv.String(), "\r\n"); lines != 259 {
		t.Errorf("CSV has %d lines, want 259", lines)
	}
	if !strings.Contains(csv.String(), "gl-d12-c04,") {
		t.Error("CSV lacks a commune")
	}
}
