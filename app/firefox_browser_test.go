package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cau-project/cau/internal/testbrowser"
)

// pagePlayer is what the Firefox and Chromium drivers share for these checks: a page
// that can be polled with a JavaScript predicate and read with an expression.
type pagePlayer interface {
	name() string
	waitFor(t *testing.T, what, predicate string, timeout time.Duration) error
	value(t *testing.T, js string, out any) error
}

type chromiumPage struct{ b *browser }

func (c chromiumPage) name() string { return c.b.Name }
func (c chromiumPage) waitFor(t *testing.T, what, predicate string, timeout time.Duration) error {
	return c.b.WaitFor(what, predicate, timeout)
}
func (c chromiumPage) value(t *testing.T, js string, out any) error {
	ctx, cancel := context.WithTimeout(c.b.Context(), 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(async () => JSON.stringify(await (`+js+`)))()`, chromedp.EvalAwaitPromise))
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(v), out)
}

type firefoxPage struct {
	nm string
	f  *testbrowser.Firefox
}

func (p firefoxPage) name() string { return p.nm }
func (p firefoxPage) waitFor(t *testing.T, what, predicate string, timeout time.Duration) error {
	return p.f.WaitFor(t.Context(), what, predicate, timeout)
}
func (p firefoxPage) value(t *testing.T, js string, out any) error {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return p.f.Eval(ctx, js, out)
}

// audioPackets is the number of audio RTP packets the page's subscriber connection has
// received, over every inbound audio stream.
const audioPackets = `window.cauState.stats().then((s) => (s && s.subscriber ? s.subscriber.inbound : [])
	.filter((r) => r.kind === 'audio').reduce((n, r) => n + (r.packetsReceived || 0), 0))`

// remoteVideosJS is window.cauState.remoteVideos() with frames counted as Firefox can:
// headless Firefox leaves getVideoPlaybackQuality().totalVideoFrames at 0 for a
// MediaStream, and counts the frames it paints in video.mozPaintedFrames instead.
const remoteVideosJS = `[...document.querySelectorAll('#grid video, #stage video')]
	.filter((v) => v.srcObject && v.srcObject.getVideoTracks().length > 0)
	.map((v) => { const h = v.closest('[data-participant]'), q = v.getVideoPlaybackQuality();
		return {participant: h ? h.dataset.participant : '', source: h ? h.dataset.source : '',
			width: v.videoWidth, height: v.videoHeight, currentTime: v.currentTime,
			frames: Math.max(q ? q.totalVideoFrames : 0, v.mozPaintedFrames || 0)}; })`

// checkPlaysAndHears waits until p plays exactly one remote camera (want's) with frames
// advancing, and receives audio packets, in growing numbers.
func checkPlaysAndHears(t *testing.T, p pagePlayer, want string) {
	t.Helper()
	playing := `(() => { const v = ` + remoteVideosJS + `;
		return v.length === 1 && v[0].width > 0 && v[0].height > 0 && v[0].frames > 0; })()`
	if err := p.waitFor(t, "remote video playing", playing, 45*time.Second); err != nil {
		t.Error(err)
		return
	}
	advancing := `(() => {
		const v = ` + remoteVideosJS + `;
		if (v.length !== 1) return false;
		const x = v[0], b = window.__adv;
		if (!b || b.p !== x.participant) { window.__adv = {p: x.participant, f: x.frames, t: x.currentTime}; return false; }
		return x.frames >= b.f + 10 && x.currentTime > b.t; })()`
	if err := p.waitFor(t, "remote video advancing", advancing, 20*time.Second); err != nil {
		t.Error(err)
	}
	var v []remoteVideo
	if err := p.value(t, remoteVideosJS, &v); err != nil {
		t.Errorf("%s: %v", p.name(), err)
	} else if len(v) != 1 || v[0].Participant != want || v[0].Source != "camera" {
		t.Errorf("%s: remote videos %+v, want exactly one: %s's camera", p.name(), v, want)
	} else {
		t.Logf("%s sees %s: %dx%d, %d frames", p.name(), want, v[0].Width, v[0].Height, v[0].Frames)
	}
	var first, later int
	if err := p.value(t, audioPackets, &first); err != nil {
		t.Errorf("%s: audio stats: %v", p.name(), err)
		return
	}
	if err := p.waitFor(t, "audio packets arriving", fmt.Sprintf(`%s.then((n) => n > %d + 20)`, audioPackets, first),
		10*time.Second); err != nil {
		t.Error(err)
	}
	_ = p.value(t, audioPackets, &later)
	t.Logf("%s: %d audio packets received", p.name(), later)
}

// TestBrowserFirefoxChromium: an official on Firefox (ESR, headless, fake devices) and one
// on Chromium join one meeting through the real join page; each plays the other's camera
// with frames advancing and receives the other's audio.
func TestBrowserFirefoxChromium(t *testing.T) {
	chromium := testbrowser.Require(t)
	firefox := testbrowser.FirefoxPath(t)
	dir := artifactDir(t)
	logs := &syncBuffer{}
	dumpOnFailure(t, dir, logs)
	a := startServer(t, logs)

	var wg sync.WaitGroup
	var alice *browser
	var ff *testbrowser.Firefox
	var aliceErr, ffErr error
	wg.Go(func() { alice, aliceErr = newBrowser(t, chromium, "alice", logs) })
	wg.Go(func() { ff, ffErr = testbrowser.StartFirefox(t, firefox, nil, logs.Printf) })
	wg.Wait()
	if aliceErr != nil || ffErr != nil {
		t.Fatal(aliceErr, ffErr)
	}
	bob := firefoxPage{nm: "bob (firefox)", f: ff}
	defer func() {
		if t.Failed() {
			alice.Shot(t, dir, "failed")
			dumpStats(alice)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var stats any
			err := ff.Eval(ctx, `window.cauState.stats().then((s) => ({stats: s, videos: window.cauState.remoteVideos(), errors: window.cauState.errors}))`, &stats)
			logs.Printf("[bob (firefox) stats] %v %v", stats, err)
			var pcs any
			err = ff.Eval(ctx, pcReport, &pcs)
			b, _ := json.MarshalIndent(pcs, "", " ")
			logs.Printf("[bob (firefox) peer connections] %s %v", b, err)
			if png, err := ff.Screenshot(ctx); err == nil {
				_ = os.WriteFile(filepath.Join(dir, "bob-failed.png"), png, 0o644)
			}
		}
	}()

	if err := alice.Run(30*time.Second, chromedp.Navigate(joinURL(t, a, a.Keys(), "ff1", "hcm", "Alice Nguyễn"))); err != nil {
		t.Fatalf("alice: open join page: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	if err := ff.AddPreloadScript(ctx, pcRecorder); err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := ff.Navigate(ctx, joinURL(t, a, a.Keys(), "ff1", "ha-noi", "Bob Trần")); err != nil {
		cancel()
		t.Fatalf("bob: open join page: %v", err)
	}
	cancel()
	pages := []pagePlayer{chromiumPage{alice}, bob}
	for _, p := range pages {
		if err := p.waitFor(t, "join", `window.cauState && window.cauState.joined`, 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	var aliceID, bobID string
	if err := pages[0].value(t, `window.cauState.selfId`, &aliceID); err != nil {
		t.Fatal(err)
	}
	if err := pages[1].value(t, `window.cauState.selfId`, &bobID); err != nil {
		t.Fatal(err)
	}
	checkPlaysAndHears(t, pages[0], bobID)
	checkPlaysAndHears(t, pages[1], aliceID)
	alice.Shot(t, dir, "in-meeting")
	ctx, cancel = context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if png, err := ff.Screenshot(ctx); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "bob-in-meeting.png"), png, 0o644)
	}
}

// pcRecorder keeps every RTCPeerConnection a page creates in window.__pcs, so that a
// failed test can report each one's transport, candidate pairs and descriptions.
const pcRecorder = `() => {
	const Orig = window.RTCPeerConnection;
	window.__pcs = [];
	window.RTCPeerConnection = function (...args) { const pc = new Orig(...args); window.__pcs.push(pc); return pc; };
	window.RTCPeerConnection.prototype = Orig.prototype;
	Object.setPrototypeOf(window.RTCPeerConnection, Orig);
}`

// pcReport describes the recorded peer connections (see pcRecorder).
const pcReport = `Promise.all((window.__pcs || []).map(async (pc) => {
	const stats = [];
	(await pc.getStats()).forEach((r) => { if (['transport', 'candidate-pair', 'local-candidate', 'remote-candidate'].includes(r.type)) stats.push(r); });
	return {connection: pc.connectionState, ice: pc.iceConnectionState, signaling: pc.signalingState,
		local: pc.localDescription && pc.localDescription.sdp, remote: pc.remoteDescription && pc.remoteDescription.sdp, stats};
}))`
