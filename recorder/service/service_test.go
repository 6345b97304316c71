package service

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/bridge"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/internal/testkit"
	"github.com/cau-project/cau/internal/testmedia"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/recorder"
	"github.com/cau-project/cau/recorder/timeline"
	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/rooms/storetest"
)

var chair = rooms.Actor{Name: "Chủ tọa", Role: rooms.RoleChair, Site: "tw"}

// TestServiceRecordsAMeeting records a scheduled meeting end to end at a real bridge
// agent with a real store: two sites publish, the chair gives one the floor, the
// recording stops; the record holds a playable file per site, a timeline with the floor
// grant and the start and stop, the roll call, and the audit log says who started,
// stopped, downloaded and (retention) deleted it.
func TestServiceRecordsAMeeting(t *testing.T) {
	ctx := context.Background()
	clip := testmedia.MakeClip(t, 320, 240)
	store, _ := testkit.Store(t)
	m := storetest.Meeting("m1", 0, 2, "tw", "p1")
	if err := store.CreateMeeting(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	agent := bridge.NewAgent(testmedia.NewBridge(t), bridge.Events{}, testmedia.Logger())
	for _, site := range []string{"tw", "p1"} {
		participant := ids.ParticipantID(site)
		if err := agent.CreatePeer(ids.ForEndpoint(participant, 0)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = agent.ClosePeer(ids.ForEndpoint(participant, 0)) })
		pub := testmedia.NewPublisher(t, site, 0)
		pub.Negotiate(t, func(offer string) (string, error) {
			return agent.Offer(ids.ForEndpoint(participant, 0), offer, map[string]ids.StreamKey{
				"camera": {Participant: participant, Source: ids.SourceCamera},
				"mic":    {Participant: participant, Source: ids.SourceMicrophone}})
		})
		pub.Start(func(int) *testmedia.Clip { return clip })
		e := rooms.AttendanceEvent{Time: time.Now(), MeetingID: "m1", Site: site, Endpoint: site + "-room", Kind: rooms.EventConnected}
		if err := store.AppendAttendance(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	svc := New(Config{Library: recorder.Library{Root: t.TempDir()}, Store: store, MaxAge: 24 * time.Hour, Logger: testmedia.Logger()})
	pick := func(key ids.StreamKey) (recorder.Source, bool) {
		site := string(key.Participant) // here each site has one endpoint, named after it
		return recorder.Source{Name: site, Site: site}, true
	}
	st, err := svc.Start(ctx, m, chair, agent, pick)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Start(ctx, m, chair, agent, pick); !errors.Is(err, ErrActive) {
		t.Errorf("second start: %v", err)
	}
	if got := svc.Status("m1"); !got.Active || got.By != chair.Name {
		t.Errorf("status %+v", got)
	}
	time.Sleep(3 * time.Second)
	if _, err := store.UpdateFloor(ctx, "m1", func(f *rooms.Floor) error { return f.Grant(chair, "p1", rooms.MicAndCamera) }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	man, err := svc.Stop(ctx, "m1", chair)
	if err != nil {
		t.Fatal(err)
	}
	if svc.Status("m1").Active {
		t.Error("still active after stop")
	}
	dir, err := svc.cfg.Library.Dir("m1", st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Files) != 2 {
		t.Fatalf("files %+v", man.Files)
	}
	for _, f := range man.Files {
		if out := testmedia.DecodeErrors(t, filepath.Join(dir, f.Name)); out != "" || !f.Complete {
			t.Errorf("%s: complete %v, decode errors %q", f.Name, f.Complete, out)
		}
	}
	tl, err := timeline.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range tl.Events {
		if e.Kind != timeline.SpeechStarted && e.Kind != timeline.SpeechEnded {
			kinds = append(kinds, string(e.Kind)+" "+e.Site)
		}
	}
	want := "present p1,present tw,layout_changed ,recording_started ,floor_granted p1,layout_changed ,recording_stopped "
	if strings.Join(kinds, ",") != want {
		t.Errorf("timeline %v", kinds)
	}
	var rc struct {
		Sites []rooms.SiteRecord `json:"sites"`
	}
	b, err := os.ReadFile(filepath.Join(dir, RollCallName))
	if err == nil {
		err = json.Unmarshal(b, &rc)
	}
	if err != nil || len(rc.Sites) != 2 || !rc.Sites[0].Online || !rc.Sites[1].Online {
		t.Errorf("roll call %+v, %v", rc, err)
	}
	if _, err := svc.Open(ctx, "m1", st.ID, man.Files[0].Name, chair); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Open(ctx, "m1", st.ID, "../../cau.db", chair); err == nil {
		t.Error("a path outside the recording opened")
	}
	if gone, err := svc.Expire(ctx, time.Now().Add(25*time.Hour)); err != nil || len(gone) != 1 {
		t.Fatalf("expire: %+v, %v", gone, err)
	}
	testutil.Eventually(t, 5*time.Second, func() string {
		entries, err := store.Audit(ctx, rooms.AuditQuery{Target: "m1"})
		if err != nil {
			return err.Error()
		}
		var got []string
		for _, e := range entries {
			if strings.HasPrefix(e.Action, "record_") {
				got = append(got, e.Action+" by "+e.Actor)
			}
		}
		if strings.Join(got, ", ") != "record_start by Chủ tọa, record_stop by Chủ tọa, record_download by Chủ tọa, record_delete by retention" {
			return "audit: " + strings.Join(got, ", ")
		}
		return ""
	})
}
