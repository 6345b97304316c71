package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/testbrowser"
)

// Browser end-to-end tests: headless Chromium with fake camera and microphone joins
// through the real join page, /ws and the bridge. They need chromium; outside CI they skip
// without it, under CI=true its absence fails them.

// chromiumPath and artifactDir come from internal/testbrowser, shared by the browser tests.
func chromiumPath(t *testing.T) string { return testbrowser.ChromiumPath(t) }

func artifactDir(t *testing.T) string { return testbrowser.ArtifactDir(t) }

// syncBuffer collects log lines from goroutines that may outlive the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Printf(format string, args ...any) {
	_, _ = fmt.Fprintf(b, format+"\n", args...)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// browser is one headless Chromium with one tab.
type browser struct {
	name string
	ctx  context.Context
	logs *syncBuffer
}

// newBrowser starts Chromium with fake media devices and a fresh profile. It is closed
// when the test ends. It may run on any goroutine.
func newBrowser(t *testing.T, execPath, name string, logs *syncBuffer) (*browser, error) {
	profile := t.TempDir() // registered before the cancel below, so removed after Chromium exits
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.WindowSize(1280, 720),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the process to exit
	})
	// Start the browser now, then follow its console.
	if err := chromedp.Do(ctx); err != nil {
		return nil, fmt.Errorf("start chromium (%s): %w", name, err)
	}
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			logs.Printf("[%s console] %s", name, m)
		}
	}()
	return &browser{name: name, ctx: ctx, logs: logs}, nil
}

// run runs actions with a timeout on the browser's tab.
func (b *browser) run(t *testing.T, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

// eval evaluates a JavaScript expression on the browser's tab.
func eval[T any](t *testing.T, b *browser, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: evaluate %s: %v", b.name, js, err)
	}
	return v
}

// waitFor polls a JavaScript predicate until it is true or the timeout passes.
func (b *browser) waitFor(t *testing.T, what, predicate string, timeout time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](predicate,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		return fmt.Errorf("%s: %s within %v: %w", b.name, what, timeout, err)
	}
	return nil
}

// dumpStats logs the page's media statistics (best effort), for failures.
func (b *browser) dumpStats(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	js := `window.cauState.stats().then((s) => JSON.stringify({stats: s, videos: window.cauState.remoteVideos(),
		errors: window.cauState.errors}, null, 1))`
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		out = err.Error()
	}
	b.logs.Printf("[%s stats] %s", b.name, out)
}

// screenshot saves the tab's viewport as dir/<name>-<label>.png (best effort).
func (b *browser) screenshot(t *testing.T, dir, label string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("%s: screenshot %s: %v", b.name, label, err)
		return
	}
	path := filepath.Join(dir, b.name+"-"+label+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Logf("screenshot: %v", err)
	}
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

// startServer starts Cầu in dev mode on loopback and returns it with its log.
func startServer(t *testing.T, logs *syncBuffer) *app.App {
	t.Helper()
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.Start(t.Context(), app.Config{
		HTTPAddr: "127.0.0.1:0", ICEUDPPort: 0, ICETCPPort: 0, Dev: true, Logger: log,
	})
	if err != nil {
		t.Fatalf("start cau: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Logf("close cau: %v", err)
		}
	})
	return a
}

func joinURL(t *testing.T, a *app.App, keys auth.Keys, meeting, site, name string) string {
	t.Helper()
	tok, err := keys.Sign(auth.Claims{Use: auth.UseJoin, Meeting: meeting, Site: site, Name: name, Role: auth.RoleParticipant}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return a.URL() + "/join/" + url.PathEscape(meeting) + "?autojoin=1&token=" + url.QueryEscape(tok)
}

// dumpOnFailure writes the collected logs to the artifact dir and, on failure, to the
// test log.
func dumpOnFailure(t *testing.T, dir string, logs *syncBuffer) {
	t.Cleanup(func() {
		out := logs.String()
		_ = os.WriteFile(filepath.Join(dir, "log.txt"), []byte(out), 0o644)
		if t.Failed() {
			const tail = 40000
			if len(out) > tail {
				out = "…" + out[len(out)-tail:]
			}
			t.Logf("artifacts in %s; server and browser log:\n%s", dir, out)
		}
	})
}

// TestBrowserTwoParticipants: two officials join one meeting from two browsers, each sees
// the other's video playing, one leaves, and the other's grid loses them at once.
func TestBrowserTwoParticipants(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode (testing.Short)")
	}
	chromium := chromiumPath(t)
	dir := artifactDir(t)
	logs := &syncBuffer{}
	dumpOnFailure(t, dir, logs) // registered first: runs last, after browsers and server are gone
	a := startServer(t, logs)

	// Start both browsers at once: on two cores each start takes seconds.
	var wg sync.WaitGroup
	var alice, bob *browser
	var aliceErr, bobErr error
	wg.Go(func() { alice, aliceErr = newBrowser(t, chromium, "alice", logs) })
	wg.Go(func() { bob, bobErr = newBrowser(t, chromium, "bob", logs) })
	wg.Wait()
	if aliceErr != nil || bobErr != nil {
		t.Fatal(aliceErr, bobErr)
	}
	pages := map[*browser]string{
		alice: joinURL(t, a, a.Keys(), "m1", "hcm", "Alice Nguyễn"),
		bob:   joinURL(t, a, a.Keys(), "m1", "ha-noi", "Bob Trần"),
	}
	defer func() {
		if t.Failed() {
			for _, b := range []*browser{alice, bob} {
				b.screenshot(t, dir, "failed")
				b.dumpStats(t)
			}
		}
	}()

	errs := make(chan error, 2)
	for b, u := range pages {
		go func() {
			if err := b.run(t, 30*time.Second, chromedp.Navigate(u)); err != nil {
				errs <- fmt.Errorf("%s: open join page: %w", b.name, err)
				return
			}
			errs <- b.waitFor(t, "join", `window.cauState && window.cauState.joined`, 20*time.Second)
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	aliceID := eval[string](t, alice, `window.cauState.selfId`)
	bobID := eval[string](t, bob, `window.cauState.selfId`)
	if aliceID == "" || bobID == "" || aliceID == bobID {
		t.Fatalf("self ids %q and %q: want two distinct ids", aliceID, bobID)
	}

	// Each sees the other's camera playing: a decoded picture, and frames still coming.
	playing := `(() => { const v = window.cauState.remoteVideos();
		return v.length > 0 && v.every((x) => x.width > 0 && x.height > 0 && x.frames > 0); })()`
	for b := range pages {
		go func() { errs <- b.waitFor(t, "remote video playing", playing, 45*time.Second) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Frames must keep coming: at least 10 more, with the clock moving. Loss at the start
	// may freeze a picture until a keyframe repairs it, so this polls rather than sampling
	// one window; a slow start is logged with the media statistics.
	advancing := `(() => {
		const v = window.cauState.remoteVideos();
		if (v.length !== 1) return false;
		const x = v[0], b = window.__adv;
		if (!b || b.p !== x.participant) { window.__adv = {p: x.participant, f: x.frames, t: x.currentTime}; return false; }
		return x.frames >= b.f + 10 && x.currentTime > b.t; })()`
	for b, want := range map[*browser]string{alice: bobID, bob: aliceID} {
		start := time.Now()
		if err := b.waitFor(t, "remote video advancing", advancing, 20*time.Second); err != nil {
			t.Error(err)
			b.dumpStats(t)
		} else if d := time.Since(start); d > 3*time.Second {
			t.Logf("%s: the remote video took %v to advance by 10 frames; stats in the log", b.name, d.Round(time.Millisecond))
			b.dumpStats(t)
		}
		v := eval[[]remoteVideo](t, b, `window.cauState.remoteVideos()`)
		if len(v) != 1 || v[0].Participant != want || v[0].Source != "camera" {
			t.Errorf("%s: remote videos %+v, want exactly one: %s's camera", b.name, v, want)
		} else {
			t.Logf("%s sees %s: %dx%d, %d frames", b.name, v[0].Participant, v[0].Width, v[0].Height, v[0].Frames)
		}
		if got := eval[[]string](t, b, `window.cauState.participants`); len(got) != 1 || got[0] != want {
			t.Errorf("%s: participants %q, want [%q]", b.name, got, want)
		}
		label := eval[string](t, b, `document.querySelector('#grid .tile .name').textContent`)
		if wantName := map[*browser]string{alice: "Bob Trần", bob: "Alice Nguyễn"}[b]; label != wantName {
			t.Errorf("%s: tile label %q, want %q", b.name, label, wantName)
		}
		if n := eval[int](t, b, `window.cauState.reconnects`); n != 0 {
			t.Errorf("%s: the page reconnected %d times (a media connection failed?); see the log", b.name, n)
		}
	}
	alice.screenshot(t, dir, "in-meeting")
	bob.screenshot(t, dir, "in-meeting")

	// Alice shares her screen (a renegotiation of her publisher connection): Bob sees it
	// large on the stage, his view of her camera keeps playing; she stops: it goes.
	if err := alice.run(t, 10*time.Second, chromedp.Click(chromedp.ID("screen-button"))); err != nil {
		t.Fatalf("alice: click share: %v", err)
	}
	if err := alice.waitFor(t, "alice is sharing",
		`document.getElementById('screen-button').getAttribute('aria-pressed') === 'true'`, 10*time.Second); err != nil {
		t.Fatalf("%v (page errors: %s)", err, eval[string](t, alice, `JSON.stringify(window.cauState.errors)`))
	}
	if err := bob.waitFor(t, "alice's screen playing on the stage",
		`document.querySelector('#stage .tile[data-participant="`+aliceID+`"]') !== null &&
		 window.cauState.remoteVideos().some((v) => v.source === 'screen' && v.width > 0 && v.frames > 0)`,
		20*time.Second); err != nil {
		t.Error(err)
	}
	bob.screenshot(t, dir, "screen-share")
	if err := bob.waitFor(t, "alice's camera still playing", `(() => {
		const c = window.cauState.remoteVideos().find((v) => v.source === 'camera');
		if (!c) return false;
		if (window.__lastFrames === undefined || c.frames < window.__lastFrames) { window.__lastFrames = c.frames; return false; }
		return c.frames > window.__lastFrames + 5; })()`, 10*time.Second); err != nil {
		t.Error(err)
		alice.dumpStats(t)
		bob.dumpStats(t)
	}
	if err := alice.run(t, 10*time.Second, chromedp.Click(chromedp.ID("screen-button"))); err != nil {
		t.Fatalf("alice: click stop sharing: %v", err)
	}
	if err := bob.waitFor(t, "alice's screen gone from the stage",
		`document.querySelectorAll('#stage .tile').length === 0 && document.getElementById('stage').hidden &&
		 window.cauState.remoteVideos().every((v) => v.source !== 'screen')`, 5*time.Second); err != nil {
		t.Error(err)
	}

	// Bob mutes his microphone: Alice's tile shows the muted icon.
	if err := bob.run(t, 10*time.Second, chromedp.Click(chromedp.ID("mic-button"))); err != nil {
		t.Fatalf("bob: click mute: %v", err)
	}
	if err := alice.waitFor(t, "bob's tile shows mic muted",
		`document.querySelector('#grid .tile.mic-muted') !== null`, 5*time.Second); err != nil {
		t.Error(err)
	}

	// Bob leaves: Alice's grid loses him within 2 s.
	if err := bob.run(t, 10*time.Second, chromedp.Click(chromedp.ID("leave-button"))); err != nil {
		t.Fatalf("bob: click leave: %v", err)
	}
	left := time.Now()
	if err := alice.waitFor(t, "bob gone from the grid",
		`window.cauState.participants.length === 0 && window.cauState.remoteVideos().length === 0 &&
		 document.querySelectorAll('#grid .tile').length === 0`, 2*time.Second); err != nil {
		t.Error(err)
	} else {
		t.Logf("alice's grid lost bob %v after the click", time.Since(left).Round(time.Millisecond))
	}
	if err := bob.waitFor(t, "bob sees the end screen",
		`!document.getElementById('end-screen').hidden && !window.cauState.joined`, 5*time.Second); err != nil {
		t.Error(err)
	}
	alice.screenshot(t, dir, "after-leave")
	bob.screenshot(t, dir, "after-leave")

	// A link signed with another key: the server refuses it and the page says so.
	bad := auth.Keys{Current: []byte("not-the-server-key-not-the-server-key")}
	if err := bob.run(t, 30*time.Second, chromedp.Navigate(joinURL(t, a, bad, "m1", "ha-noi", "Mallory"))); err != nil {
		t.Fatalf("bob: open bad link: %v", err)
	}
	if err := bob.waitFor(t, "invalid-link message",
		`!document.getElementById('end-screen').hidden &&
		 document.getElementById('end-title').textContent.includes('invalid or expired')`, 10*time.Second); err != nil {
		t.Error(err)
	} else {
		detail := eval[string](t, bob, `document.getElementById('end-detail').textContent`)
		if !strings.Contains(detail, "Server:") {
			t.Errorf("bad link: detail %q does not show the server's message", detail)
		}
	}
	bob.screenshot(t, dir, "bad-token")
	if got := eval[[]string](t, alice, `window.cauState.participants`); len(got) != 0 {
		t.Errorf("alice: participants %q after a refused join, want none", got)
	}

	// The preview screen: Bob opens a link without autojoin; his name comes from name=,
	// he joins with the button and Alice sees him under that name.
	preview := strings.Replace(joinURL(t, a, a.Keys(), "m1", "ha-noi", "Bob Trần"), "autojoin=1", "name=Ông+Bình", 1)
	if err := bob.run(t, 30*time.Second, chromedp.Navigate(preview)); err != nil {
		t.Fatalf("bob: open preview: %v", err)
	}
	if err := bob.waitFor(t, "preview with camera", `!document.getElementById('preview-screen').hidden &&
		document.getElementById('preview-video').videoWidth > 0`, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := eval[string](t, bob, `document.getElementById('name-input').value`); got != "Ông Bình" {
		t.Errorf("preview name %q, want %q (from name=)", got, "Ông Bình")
	}
	bob.screenshot(t, dir, "preview")
	if err := bob.run(t, 10*time.Second, chromedp.Click(chromedp.ID("join-button"))); err != nil {
		t.Fatalf("bob: click join: %v", err)
	}
	if err := alice.waitFor(t, "bob back, named from the preview",
		`document.querySelector('#grid .tile .name')?.textContent === 'Ông Bình' &&
		 window.cauState.remoteVideos().some((v) => v.width > 0 && v.frames > 0)`, 20*time.Second); err != nil {
		t.Error(err)
	}
}

// cutProxy is a TCP proxy to the server that can cut every connection through it, as a
// network drop would.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
	return p
}

// URL is the proxy's base URL.
func (p *cutProxy) URL() string { return "http://" + p.ln.Addr().String() }

// cut closes every connection made so far.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// TestBrowserReconnect: Bob's signaling connection drops; his page joins again by itself,
// Alice sees the old Bob go and the new one come, and video flows both ways again.
func TestBrowserReconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode (testing.Short)")
	}
	chromium := chromiumPath(t)
	dir := artifactDir(t)
	logs := &syncBuffer{}
	dumpOnFailure(t, dir, logs)
	a := startServer(t, logs)
	proxy := newCutProxy(t, strings.TrimPrefix(a.URL(), "http://"))

	var wg sync.WaitGroup
	var alice, bob *browser
	var aliceErr, bobErr error
	wg.Go(func() { alice, aliceErr = newBrowser(t, chromium, "alice", logs) })
	wg.Go(func() { bob, bobErr = newBrowser(t, chromium, "bob", logs) })
	wg.Wait()
	if aliceErr != nil || bobErr != nil {
		t.Fatal(aliceErr, bobErr)
	}
	defer func() {
		if t.Failed() {
			for _, b := range []*browser{alice, bob} {
				b.screenshot(t, dir, "failed")
				b.dumpStats(t)
			}
		}
	}()
	bobURL := strings.Replace(joinURL(t, a, a.Keys(), "m2", "ha-noi", "Bob"), a.URL(), proxy.URL(), 1)
	for b, u := range map[*browser]string{alice: joinURL(t, a, a.Keys(), "m2", "hcm", "Alice"), bob: bobURL} {
		if err := b.run(t, 30*time.Second, chromedp.Navigate(u)); err != nil {
			t.Fatalf("%s: open join page: %v", b.name, err)
		}
	}
	playing := `(() => { const v = window.cauState.joined && window.cauState.remoteVideos();
		return v && v.length === 1 && v[0].width > 0 && v[0].frames > 0; })()`
	for _, b := range []*browser{alice, bob} {
		if err := b.waitFor(t, "remote video playing", playing, 45*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	oldBob := eval[string](t, bob, `window.cauState.selfId`)

	proxy.cut()
	if err := bob.waitFor(t, "rejoined with a new id",
		`window.cauState.joined && window.cauState.selfId !== '`+oldBob+`'`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	newBob := eval[string](t, bob, `window.cauState.selfId`)
	for _, b := range []*browser{alice, bob} {
		if err := b.waitFor(t, "remote video playing after the reconnect", playing, 30*time.Second); err != nil {
			t.Error(err)
		}
	}
	if got := eval[[]string](t, alice, `window.cauState.participants`); len(got) != 1 || got[0] != newBob {
		t.Errorf("alice: participants %q after bob's reconnect, want [%q]", got, newBob)
	}
	alice.screenshot(t, dir, "after-reconnect")
	bob.screenshot(t, dir, "after-reconnect")
}
