package monitor

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/rooms/store/bolt"
	"github.com/cau-project/cau/web"
	"github.com/chromedp/chromedp"
)

// The console's Meetings panel in headless Chromium: a meeting in its test window with
// four sites, two of them connected (one degraded); its pre-meeting check lists the two
// missing sites first, then the poor one, and a screenshot is saved.
func TestConsoleMeetingsInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode (testing.Short)")
	}
	dir := artifactDir(t)
	var logs strings.Builder
	browser := startChromium(t, func(f string, a ...any) { fmt.Fprintf(&logs, f+"\n", a...) })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("browser log:\n%s", logs.String())
		}
	})

	ctx := context.Background()
	tree := testTree(t)
	store, err := bolt.Open(filepath.Join(t.TempDir(), "cau.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	now := time.Now()
	if _, err := rooms.NewScheduler(store, tree).Schedule(ctx, rooms.Meeting{ID: "giao-ban", Title: "Giao ban tháng",
		ChairSite: "central", Sites: []string{"central", "p1", "d1", "c1"}, Start: now.Add(20 * time.Minute),
		End: now.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	src := &fakeSource{}
	var links []Link
	for i, site := range []string{"d1", "c1"} {
		l := Link{Meeting: "giao-ban", Bridge: "local", Measured: true, Joined: now,
			Participant: protocol.Participant{ID: fmt.Sprintf("p%d", i), Name: "Phòng họp " + site, Site: site, Role: "room"},
			Up:          protocol.LinkFigures{Streams: 2, Packets: 1000, RTTMs: 30, JitterMs: 4, BitrateBps: 9e5, LastPacketAgeMs: 10},
			Down:        protocol.LinkFigures{Streams: 2, Packets: 1000, RTTMs: 30, JitterMs: 5, BitrateBps: 1.2e6, LastPacketAgeMs: 400}}
		if site == "c1" {
			l.Up.LossPct, l.Down.LossPct, l.Up.RTTMs, l.Down.RTTMs = 8, 8, 400, 400
		}
		links = append(links, l)
	}
	src.set(links, nil, map[string]string{"local": "central"})
	m := New(Config{Source: src, Tree: tree, Store: store, Logger: quietLogger()})
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(runCtx)
	mux := http.NewServeMux()
	mux.Handle(APIPrefix, m.Handler(testKeys))
	mux.Handle("/", web.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	tab, cancelTab := chromedp.NewContext(browser)
	defer cancelTab()
	tok := tokenFor(t, auth.RoleTechnician, time.Hour)
	if err := chromedp.Do(tab, chromedp.Navigate(srv.URL+"/console?token="+url.QueryEscape(tok))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, tab, "the meetings list", `document.querySelectorAll('#meetings li').length === 1`, 10*time.Second)
	evalJS[bool](t, tab, `(document.querySelector('#meetings li').click(), true)`)
	// The check: 2 of 4 joined, missing first (by name, bytewise), then c1 poor, then d1.
	waitJS(t, tab, "the pre-meeting check", `window.cauConsole.meetingShown === 'giao-ban' &&
		document.querySelector('#m-sites tr[data-id="c1"] .dot').dataset.g === 'poor'`, 15*time.Second)
	order := evalJS[string](t, tab, `[...document.querySelectorAll('#m-sites tr')].map((r) => r.dataset.id + ':' + r.className).join(',')`)
	if want := "central:missing,p1:missing,c1:joined,d1:joined"; order != want {
		t.Errorf("rows %s, want %s", order, want)
	}
	if s := evalJS[string](t, tab, `document.getElementById('m-summary').textContent`); !strings.HasPrefix(s, "2 of 4 sites joined") {
		t.Errorf("summary %q, want it to start with \"2 of 4 sites joined\"", s)
	}
	if e := evalJS[string](t, tab, `window.cauConsole.errors.join('; ')`); e != "" {
		t.Errorf("page errors: %s", e)
	}
	shot, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "console-meeting-check.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}
}
