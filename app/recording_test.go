package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/apiclient"
	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/testkit"
	"github.com/cau-project/cau/internal/testmedia"
	"github.com/cau-project/cau/internal/testutil"
)

// TestRecordAMeetingOverTheAPI records a scheduled meeting end to end: two pion endpoints
// publish real VP8 and Opus through signaling and the bridge, the chair starts and stops
// the recording over the REST API, every participant is told (the pages' indicator),
// and the meeting's record then lists one playable file per site, the timeline and
// rollcall.json; the composite MP4 renders and plays. Roles other than admin and the
// meeting's chair may not start it.
func TestRecordAMeetingOverTheAPI(t *testing.T) {
	ctx := context.Background()
	red, blue := testmedia.MakeClipOf(t, "color=c=red", 320, 240), testmedia.MakeClipOf(t, "color=c=blue", 320, 240)
	store, tree := testkit.Store(t, testkit.SiteTW, testkit.SiteXA, testkit.SiteXB)
	testkit.Schedule(t, store, tree, testkit.Hop("tw", "xa", "xb"))
	log := testutil.Logger()
	recDir := filepath.Join(t.TempDir(), "recordings")
	a, err := app.Start(ctx, app.Config{HTTPAddr: "127.0.0.1:0", ICETCPPort: -1, Dev: true, Logger: log,
		Store: store, Tree: tree, Site: "tw", Ancestry: tree.Ancestors, RecordingsDir: recDir})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	apiAs := func(c auth.Claims) *apiclient.Client {
		c.Use = auth.UseAPI
		if c.Name == "" {
			c.Name = string(c.Role)
		}
		tok, err := a.Keys().Sign(c, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return apiclient.New(a.URL(), tok, nil)
	}
	chair := apiAs(auth.Claims{Role: auth.RoleChair, Meeting: "hop", Site: "tw"})

	// Nobody connected: nothing to record.
	if _, err := chair.Record(ctx, "hop", "start"); apiStatus(err) != http.StatusConflict {
		t.Fatalf("start with nobody connected: %v, want 409", err)
	}

	var clients []*client.Client
	for _, s := range []struct {
		site string
		role auth.Role
		clip *testmedia.Clip
	}{{"tw", auth.RoleChair, red}, {"xa", auth.RoleParticipant, blue}, {"xb", auth.RoleParticipant, nil}} {
		c := join(t, a, auth.Claims{Site: s.site, Role: s.role})
		clients = append(clients, c)
		if s.clip == nil {
			continue // xb only watches
		}
		synth, err := c.PublishWith(ctx, client.PublishOptions{NoAudio: true, NoVideo: true})
		if err != nil {
			t.Fatal(err)
		}
		stop := testmedia.Feed(synth.Video, synth.Audio, s.clip)
		defer stop()
	}

	for _, who := range []auth.Claims{
		{Role: auth.RoleParticipant, Meeting: "hop", Site: "xa"},
		{Role: auth.RoleTechnician},
		{Role: auth.RoleChair, Meeting: "other", Site: "tw"},
	} {
		if _, err := apiAs(who).Record(ctx, "hop", "start"); apiStatus(err) != http.StatusForbidden {
			t.Errorf("%s of %q starts the recording: %v, want 403", who.Role, who.Meeting, err)
		}
	}
	if st, err := apiAs(auth.Claims{Role: auth.RoleParticipant, Meeting: "hop", Site: "xa"}).RecordingStatus(ctx, "hop"); err != nil || st.Active {
		t.Fatalf("a participant reads the state: %+v %v", st, err)
	}

	// Let both publishers' streams reach the bridge, so that both are recorded from the start.
	testutil.Eventually(t, 20*time.Second, func() string {
		if n := len(a.Signaling().Local().Agent().Peers()); n < 3 {
			return "peers at the bridge: " + string(rune('0'+n))
		}
		return ""
	})
	time.Sleep(2 * time.Second)
	st, err := chair.Record(ctx, "hop", "start")
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if !st.Active || st.ID == "" || !strings.HasPrefix(st.By, "chair") {
		t.Fatalf("start: %+v", st)
	}
	if _, err := chair.Record(ctx, "hop", "start"); apiStatus(err) != http.StatusConflict {
		t.Errorf("second start: %v, want 409", err)
	}
	for _, c := range clients {
		testutil.Eventually(t, 5*time.Second, func() string {
			if r := c.Recording(); !r.Active || r.By != st.By {
				return "participant not told of the recording"
			}
			return ""
		})
	}
	// A participant who joins now is told too, right after joined.
	late := join(t, a, auth.Claims{Site: "xb", Name: "late"})
	testutil.Eventually(t, 5*time.Second, func() string {
		if !late.Recording().Active {
			return "late joiner not told of the recording"
		}
		return ""
	})

	time.Sleep(8 * time.Second)
	wall := time.Since(began)
	stopped, err := chair.Record(ctx, "hop", "stop")
	if err != nil {
		t.Fatal(err)
	}
	if stopped.Active || stopped.ID != st.ID {
		t.Fatalf("stop: %+v, want the recording %s finished", stopped, st.ID)
	}
	testutil.Eventually(t, 5*time.Second, func() string {
		if late.Recording().Active || clients[2].Recording().Active {
			return "participants still shown recording"
		}
		return ""
	})

	recs, err := chair.Recordings(ctx, "hop")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != st.ID || recs[0].State != "stopped" {
		t.Fatalf("recordings %+v", recs)
	}
	rec := recs[0]
	kinds := map[string][]apiclient.RecordingFile{}
	for _, f := range rec.Files {
		kinds[f.Kind] = append(kinds[f.Kind], f)
	}
	if len(kinds["rollcall"]) != 1 || len(kinds["timeline"]) != 1 || len(kinds["manifest"]) != 1 {
		t.Errorf("files %+v: want rollcall.json, timeline.json and recording.json", rec.Files)
	}
	// One file per site (a second part only if a track came late); each plays: audio and
	// video, decoded without an error. Durations are logged, not compared with the wall
	// clock (the recorder's own tests measure them on a quiet bridge).
	var sites []string
	dl := t.TempDir()
	for _, f := range kinds["media"] {
		if !slices.Contains(sites, f.Site) {
			sites = append(sites, f.Site)
		}
		path := download(t, chair, rec.ID, f.Name, dl)
		p := testmedia.ProbeFile(t, path)
		v, okV := p.Stream("video")
		au, okA := p.Stream("audio")
		if !okV || !okA || v.Frames == 0 || au.Frames == 0 || !f.Complete {
			t.Errorf("%s (%s): streams %+v, complete %v", f.Name, f.Site, p.Streams, f.Complete)
		}
		if out := testmedia.DecodeErrors(t, path); out != "" {
			t.Errorf("%s: decode errors:\n%s", f.Name, out)
		}
		t.Logf("%s (%s): %.2f s (%.2f s of wall clock recorded), %d bytes", f.Name, f.Site, p.Duration, wall.Seconds(), f.Bytes)
	}
	slices.Sort(sites)
	if !slices.Equal(sites, []string{"tw", "xa"}) {
		t.Errorf("media files of sites %v, want tw's and xa's", sites)
	}
	if t.Failed() {
		b, _ := os.ReadFile(download(t, chair, rec.ID, "recording.json", dl))
		t.Logf("recording.json: %s", b)
	}
	var rc struct {
		Meeting string `json:"meeting"`
		Sites   []struct {
			Site        string     `json:"site"`
			FirstJoined *time.Time `json:"first_joined"`
		} `json:"sites"`
	}
	b, err := os.ReadFile(download(t, chair, rec.ID, "rollcall.json", dl))
	if err != nil || json.Unmarshal(b, &rc) != nil || rc.Meeting != "hop" || len(rc.Sites) != 3 {
		t.Fatalf("rollcall.json: %v %s", err, b)
	}
	for _, s := range rc.Sites {
		if s.FirstJoined == nil {
			t.Errorf("roll call beside the files: %s did not attend: %s", s.Site, b)
		}
	}

	// The composite, rendered after the meeting, plays.
	if err := chair.Compose(ctx, "hop", rec.ID); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 3*time.Minute, func() string {
		recs, err := chair.Recordings(ctx, "hop")
		if err != nil || len(recs) != 1 {
			return "list failed"
		}
		switch recs[0].Compose {
		case "done":
			return ""
		case "failed":
			t.Fatalf("composite failed: %s", recs[0].ComposeError)
		}
		return "composite " + recs[0].Compose
	})
	mp4 := download(t, chair, rec.ID, "composite.mp4", dl)
	p := testmedia.ProbeFile(t, mp4)
	v, okV := p.Stream("video")
	au, okA := p.Stream("audio")
	if !okV || !okA || v.Codec != "h264" || au.Codec != "aac" || v.Frames == 0 || !(p.Duration > 0) {
		t.Errorf("composite.mp4: %.2f s for %.2f s, streams %+v", p.Duration, wall.Seconds(), p.Streams)
	}
	if out := testmedia.DecodeErrors(t, mp4); out != "" {
		t.Errorf("composite.mp4: decode errors:\n%s", out)
	}
	t.Logf("composite.mp4: %.2f s for %.2f s recorded, %d video frames", p.Duration, wall.Seconds(), v.Frames)
	// Another meeting's chair may not read this record.
	if _, err := apiAs(auth.Claims{Role: auth.RoleChair, Meeting: "other", Site: "tw"}).Recordings(ctx, "hop"); apiStatus(err) != http.StatusForbidden {
		t.Errorf("another meeting's chair lists the recordings: %v, want 403", err)
	}
}

// download saves a file of recording rec of meeting hop into dir and returns its path.
func download(t *testing.T, c *apiclient.Client, rec, name, dir string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := c.DownloadRecordingFile(context.Background(), "hop", rec, name, f); err != nil {
		t.Fatalf("download %s: %v", name, err)
	}
	return path
}

// apiStatus is the HTTP status of an API error answer, 0 for anything else.
func apiStatus(err error) int {
	var e *apiclient.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}
