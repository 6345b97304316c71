package app_test

import (
	"context"
	"log/slog"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/deploy/examples"
	"github.com/cau-project/cau/internal/testapp"
	"github.com/cau-project/cau/internal/testbrowser"
	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/rooms/store/bolt"
)

// Browser end-to-end tests: headless Chromium with fake camera and microphone opens the
// real pages, talks to /ws, the API and the bridge. They need chromium; outside CI they
// skip without it, under CI=true its absence fails them. Each test sets its stage with
// newStage: a server, a log, an artifact directory, and browsers that leave a screenshot
// and their state in the log when the test fails.

// browser is a tab of a headless Chromium (internal/testbrowser).
type browser = testbrowser.Browser

// stage is what a browser test runs on.
type stage struct {
	t   *testing.T
	dir string // artifacts: screenshots and log.txt
	log *testbrowser.Log
	app *app.App
}

// newStage starts Cầu in dev mode on loopback; withStore: with the REST API's store and
// the four-level dev tree saved in it, as `cau serve` runs.
func newStage(t *testing.T, withStore bool) *stage {
	t.Helper()
	return newStageWith(t, withStore, nil)
}

// newStageWith is newStage with the configuration changed by mutate (if not nil).
func newStageWith(t *testing.T, withStore bool, mutate func(*app.Config)) *stage {
	t.Helper()
	testbrowser.Require(t)
	s := &stage{t: t, dir: testbrowser.ArtifactDir(t), log: &testbrowser.Log{}}
	testbrowser.KeepLog(t, s.dir, s.log) // registered first: runs last, after browsers and server are gone
	cfg := app.Config{HTTPAddr: "127.0.0.1:0", ICEUDPPort: 0, ICETCPPort: 0, Dev: true,
		Logger: slog.New(slog.NewTextHandler(s.log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if withStore {
		store, err := bolt.Open(filepath.Join(t.TempDir(), "cau.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = store.Close() }) // after the server's close below
		f, err := examples.FS.Open(examples.DevTree)
		if err != nil {
			t.Fatal(err)
		}
		tree, err := rooms.LoadTree(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := store.SaveSites(context.Background(), tree.Sites()); err != nil {
			t.Fatal(err)
		}
		cfg.Store, cfg.Tree, cfg.Site, cfg.Ancestry = store, tree, tree.Root().ID, tree.Ancestors
	}
	if mutate != nil {
		mutate(&cfg)
	}
	s.app, _ = testapp.Start(t, cfg)
	return s
}

// browsers starts one participant's browser (fake camera and microphone) per name, all
// at once, with the options o (Name and Log are set here). When the test fails, each
// leaves a screenshot and its page's state in the log.
func (s *stage) browsers(o testbrowser.Options, names ...string) []*browser {
	s.t.Helper()
	o.Media, o.Log = true, s.log
	bs := testbrowser.MustStart(s.t, o, names...)
	s.t.Cleanup(func() { // before the browsers close (cleanups run last first)
		if s.t.Failed() {
			for _, b := range bs {
				b.Shot(s.t, s.dir, "failed")
				dumpStats(b)
			}
		}
	})
	return bs
}

// dumpStats logs a page's state (best effort), for failures: a join page's media
// statistics, a kiosk's session state.
func dumpStats(b *browser) {
	out, err := testbrowser.Await[string](b, `(async () => {
		if (window.cauState) return JSON.stringify({stats: await window.cauState.stats(),
			videos: window.cauState.remoteVideos(), errors: window.cauState.errors}, null, 1);
		if (window.cauRoom) return JSON.stringify({state: window.cauRoom.state, joined: window.cauRoom.joined,
			sessions: window.cauRoom.sessions, errors: window.cauRoom.errors});
		return 'no test hook on ' + location.pathname; })()`, 10*time.Second)
	if err != nil {
		out = err.Error()
	}
	b.Logf("state %s", out)
}

// joinURL is a join link for one endpoint, signed with keys (the server's, or others).
func (s *stage) joinURL(keys auth.Keys, meeting, site, name string, role auth.Role) string {
	s.t.Helper()
	tok, err := keys.Sign(auth.Claims{Use: auth.UseJoin, Meeting: meeting, Site: site, Name: name, Role: role}, time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.app.URL() + "/join/" + url.PathEscape(meeting) + "?autojoin=1&token=" + url.QueryEscape(tok)
}

// remoteVideo mirrors window.cauState.remoteVideos() in join.js.
type remoteVideo struct {
	Participant string  `json:"participant"`
	Source      string  `json:"source"`
	Width       int     `json:"width"`
	Height      int     `json:"height"`
	Frames      int     `json:"frames"`
	CurrentTime float64 `json:"currentTime"`
}

// The helpers below keep the older browser tests (Firefox, TURN) on the shared harness
// with their own flow.

// syncBuffer is the log those tests collect.
type syncBuffer = testbrowser.Log

func artifactDir(t *testing.T) string { return testbrowser.ArtifactDir(t) }

func dumpOnFailure(t *testing.T, dir string, logs *syncBuffer) { testbrowser.KeepLog(t, dir, logs) }

// newBrowser starts a participant's Chromium (fake media) from execPath.
func newBrowser(t *testing.T, execPath, name string, logs *syncBuffer) (*browser, error) {
	return testbrowser.Start(t, testbrowser.Options{Name: name, Log: logs, Media: true, ExecPath: execPath})
}

// startServer starts Cầu in dev mode on loopback.
func startServer(t *testing.T, logs *syncBuffer) *app.App {
	t.Helper()
	a, _ := testapp.Start(t, app.Config{Dev: true,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	return a
}

// joinURL is a participant's join link signed with keys.
func joinURL(t *testing.T, a *app.App, keys auth.Keys, meeting, site, name string) string {
	t.Helper()
	s := &stage{t: t, app: a}
	return s.joinURL(keys, meeting, site, name, auth.RoleParticipant)
}
