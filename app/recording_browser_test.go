package app_test

import (
	"context"
	"log/slog"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/apiclient"
	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/testapp"
	"github.com/cau-project/cau/internal/testbrowser"
	"github.com/cau-project/cau/internal/testkit"
)

// TestBrowserShowsRecording: a participant's join page in Chromium shows the
// "Đang ghi hình" badge while an admin records the meeting over the API, and hides it
// when the recording stops.
func TestBrowserShowsRecording(t *testing.T) {
	testbrowser.Require(t)
	s := &stage{t: t, dir: testbrowser.ArtifactDir(t), log: &testbrowser.Log{}}
	testbrowser.KeepLog(t, s.dir, s.log)
	ctx := context.Background()
	store, tree := testkit.Store(t, testkit.SiteTW, testkit.SiteXA)
	testkit.Schedule(t, store, tree, testkit.Hop("tw", "xa"))
	log := slog.New(slog.NewTextHandler(s.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, _ := testapp.Start(t, app.Config{ICETCPPort: -1, Dev: true, Logger: log,
		Store: store, Tree: tree, Site: "tw", Ancestry: tree.Ancestors, RecordingsDir: filepath.Join(t.TempDir(), "rec")})
	s.app = a
	b := s.browsers(testbrowser.Options{}, "xa")[0]
	if err := b.Open(s.joinURL(a.Keys(), "hop", "xa", "UBND xã", auth.RoleParticipant)+"&lang=vi", "join",
		`window.cauState && window.cauState.joined && window.cauRecording && !window.cauRecording.active`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	tok, err := a.Keys().Sign(auth.Claims{Use: auth.UseAPI, Role: auth.RoleAdmin, Name: "ops"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	admin := apiclient.New(a.URL(), tok, nil)
	if _, err := admin.Record(ctx, "hop", "start"); err != nil {
		t.Fatal(err)
	}
	const shown = `(() => { const b = document.getElementById('recording-badge');
		return window.cauRecording.active && b && !b.hidden && b.offsetHeight > 0 && b.textContent.includes('Đang ghi hình'); })()`
	if err := b.WaitFor("the recording badge", shown, 10*time.Second); err != nil {
		t.Log(testbrowser.Eval[string](t, b, `JSON.stringify({rec: window.cauRecording, badge: document.getElementById('recording-badge')?.outerHTML})`))
		t.Fatal(err)
	}
	b.Shot(t, s.dir, "recording")
	if _, err := admin.Record(ctx, "hop", "stop"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor("the badge gone", `!window.cauRecording.active && document.getElementById('recording-badge').hidden`, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// The meeting's record page lists the recording with the roll call and the timeline
	// (its media files are TestRecordAMeetingOverTheAPI's: a fake camera on a loaded
	// machine may not have sent its first sender report yet).
	rec := b.Tab(t, "record")
	if err := rec.Open(a.URL()+"/record/hop?lang=vi&token="+url.QueryEscape(tok), "record page",
		`window.cauRecord && window.cauRecord.ready && document.querySelectorAll('#recordings tr').length >= 3`, 30*time.Second); err != nil {
		t.Log(testbrowser.Eval[string](t, rec, `JSON.stringify(window.cauRecord || null)`))
		t.Fatal(err)
	}
	names := testbrowser.Eval[[]string](t, rec, `[...document.querySelectorAll('#recordings tr')].map((tr) => tr.dataset.name)`)
	if !slices.Contains(names, "rollcall.json") || !slices.Contains(names, "timeline.json") {
		t.Errorf("record page lists %v: want rollcall.json and timeline.json", names)
	}
	t.Logf("record page lists %v", names)
	if u := testbrowser.Eval[string](t, rec, `location.href`); strings.Contains(u, "token") {
		t.Errorf("the token stayed in the URL: %s", u)
	}
	rec.Shot(t, s.dir, "record")
}
