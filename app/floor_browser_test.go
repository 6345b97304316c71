package app_test

import (
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
)

// joinURLAs is joinURL for any role.
func joinURLAs(t *testing.T, a *app.App, meeting, site, name string, role auth.Role) string {
	t.Helper()
	tok, err := a.Keys().Sign(auth.Claims{Use: auth.UseJoin, Meeting: meeting, Site: site, Name: name, Role: role}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return a.URL() + "/join/" + url.PathEscape(meeting) + "?autojoin=1&token=" + url.QueryEscape(tok)
}

// mainWindow mirrors one entry of window.cauState.layout().main in join.js.
type mainWindow struct {
	remoteVideo
	Window string `json:"window"`
}

// pageLayout mirrors window.cauState.layout() in join.js.
type pageLayout struct {
	Layout  string       `json:"layout"`
	Main    []mainWindow `json:"main"`
	Strip   []string     `json:"strip"`
	Speaker string       `json:"speaker"`
}

func (l pageLayout) inMain(id string) *mainWindow {
	for i := range l.Main {
		if l.Main[i].Participant == id {
			return &l.Main[i]
		}
	}
	return nil
}

// TestBrowserFloorControl runs training mode through the join page: the chair switches
// modes, a site requests the floor, the chair grants it from the request queue, another
// site sees the speaker in the main window beside the chair, the speaker's microphone
// button comes alive; the chair revokes and the speaker leaves the main window after the
// talk hold time.
func TestBrowserFloorControl(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode (testing.Short)")
	}
	chromium := chromiumPath(t)
	dir := artifactDir(t)
	logs := &syncBuffer{}
	dumpOnFailure(t, dir, logs)
	a := startServer(t, logs)

	var wg sync.WaitGroup
	names := []string{"chair", "xa-a", "xa-b"}
	bs := make([]*browser, len(names))
	errs := make([]error, len(names))
	for i, n := range names {
		wg.Go(func() { bs[i], errs[i] = newBrowser(t, chromium, n, logs) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	chair, siteA, siteB := bs[0], bs[1], bs[2]
	defer func() {
		if t.Failed() {
			for _, b := range bs {
				b.screenshot(t, dir, "failed")
				b.dumpStats(t)
			}
		}
	}()

	// The chair joins first: in an ad hoc meeting the first chair's site chairs it.
	if err := chair.run(t, 30*time.Second, chromedp.Navigate(joinURLAs(t, a, "hop-tinh", "central", "UBND tỉnh", auth.RoleChair))); err != nil {
		t.Fatalf("chair: open join page: %v", err)
	}
	if err := chair.waitFor(t, "join", `window.cauState && window.cauState.joined`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	joinErrs := make(chan error, 2)
	for b, u := range map[*browser]string{
		siteA: joinURLAs(t, a, "hop-tinh", "xa-a", "UBND xã A", auth.RoleParticipant),
		siteB: joinURLAs(t, a, "hop-tinh", "xa-b", "UBND xã B", auth.RoleParticipant),
	} {
		go func() {
			if err := b.run(t, 30*time.Second, chromedp.Navigate(u)); err != nil {
				joinErrs <- fmt.Errorf("%s: open join page: %w", b.name, err)
				return
			}
			joinErrs <- b.waitFor(t, "join", `window.cauState && window.cauState.joined`, 20*time.Second)
		}()
	}
	for range 2 {
		if err := <-joinErrs; err != nil {
			t.Fatal(err)
		}
	}
	chairID := eval[string](t, chair, `window.cauState.selfId`)
	aID := eval[string](t, siteA, `window.cauState.selfId`)
	holdMs := eval[int](t, siteB, `window.cauState.holdMs`)
	if holdMs != 3000 {
		t.Errorf("talk hold time %d ms, want the default 3000", holdMs)
	}
	for _, b := range bs {
		if err := b.waitFor(t, "the floor chaired by central, everyone here",
			`window.cauState.floor?.chair_site === 'central' && window.cauState.participants.length === 2`, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if eval[bool](t, siteA, `document.getElementById('floor-chair').hidden`) != true {
		t.Error("a participant's page shows the chair's controls")
	}

	// Training mode: only the chair site is on air; A's microphone button says why not.
	if err := chair.run(t, 10*time.Second, chromedp.Click(chromedp.ID("floor-mode-training"))); err != nil {
		t.Fatalf("chair: click training: %v", err)
	}
	for _, b := range bs {
		if err := b.waitFor(t, "training mode", `window.cauState.floor?.mode === 'training' &&
			document.getElementById('floor-mode').dataset.mode === 'training'`, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := siteA.waitFor(t, "mic off the air, with a hint and a request button",
		`document.getElementById('mic-button').disabled && !document.getElementById('floor-hint').hidden &&
		 !document.getElementById('floor-button').hidden &&
		 document.getElementById('floor-button').dataset.action === 'request'`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// B: the chair in the first main window, and no other: a mode switch ends every grant
	// and applies at once (A may have been voice-switched there in discussion mode).
	if err := siteB.waitFor(t, "the chair large, alone",
		`(() => { const l = window.cauState.layout();
		   return l.main.length === 1 && l.main[0].participant === '`+chairID+`' && l.main[0].window === 'chair'; })()`,
		2*time.Second); err != nil {
		t.Fatalf("%v; layout %s", err, eval[string](t, siteB, `JSON.stringify(window.cauState.layout())`))
	}

	// A asks for the floor; the chair sees the request and grants it.
	if err := siteA.run(t, 10*time.Second, chromedp.Click(chromedp.ID("floor-button"))); err != nil {
		t.Fatalf("xa-a: click request: %v", err)
	}
	grant := `#floor-requests li[data-site="xa-a"] button[data-action="grant"]`
	if err := chair.waitFor(t, "A's request in the queue", `document.querySelector('`+grant+`') !== null`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := siteA.waitFor(t, "A's button offers to withdraw",
		`document.getElementById('floor-button').dataset.action === 'withdraw'`, 5*time.Second); err != nil {
		t.Error(err)
	}
	chair.screenshot(t, dir, "request")
	if err := chair.run(t, 10*time.Second, chromedp.Click(chromedp.CSS(grant))); err != nil {
		t.Fatalf("chair: click grant: %v", err)
	}

	// B sees A in the speaker window, playing, beside the chair; A may speak.
	speaking := `(() => { const l = window.cauState.layout();
		const a = l.main.find((m) => m.participant === '` + aID + `');
		if (!a || a.window !== 'speaker' || a.width === 0 || a.frames === 0) return false;
		const b = window.__spk;
		if (!b || b.t > a.currentTime) { window.__spk = {f: a.frames, t: a.currentTime}; return false; }
		return a.frames >= b.f + 5 && a.currentTime > b.t &&
		       l.main.some((m) => m.participant === '` + chairID + `' && m.window === 'chair'); })()`
	if err := siteB.waitFor(t, "A playing in the speaker window", speaking, 15*time.Second); err != nil {
		t.Fatalf("%v; layout %s", err, eval[string](t, siteB, `JSON.stringify(window.cauState.layout())`))
	}
	if err := siteA.waitFor(t, "A's mic button enabled, and a yield button",
		`!document.getElementById('mic-button').disabled && document.getElementById('floor-hint').hidden &&
		 document.getElementById('floor-button').dataset.action === 'yield'`, 5*time.Second); err != nil {
		t.Error(err)
	}
	siteB.screenshot(t, dir, "speaker")
	siteA.screenshot(t, dir, "speaking")
	chair.screenshot(t, dir, "granted")

	// The chair revokes: A leaves B's main window, but only after the hold time.
	revoke := `#floor-speakers li[data-site="xa-a"] button[data-action="revoke"]`
	if err := chair.run(t, 10*time.Second, chromedp.Click(chromedp.CSS(revoke))); err != nil {
		t.Fatalf("chair: click revoke: %v", err)
	}
	revoked := time.Now()
	if err := siteB.waitFor(t, "the revoke", `window.cauState.floor.speakers.length === 0`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	var l pageLayout
	l = eval[pageLayout](t, siteB, `window.cauState.layout()`)
	if time.Since(revoked) < time.Duration(holdMs)*time.Millisecond/2 {
		if w := l.inMain(aID); w == nil {
			t.Errorf("A left the main window %v after the revoke, before the %d ms hold time", time.Since(revoked), holdMs)
		} else if w.Window != "previous" {
			t.Errorf("A held in the main window as %q after the revoke, want previous", w.Window)
		}
	}
	if err := siteB.waitFor(t, "A out of the main window",
		`!window.cauState.layout().main.some((m) => m.participant === '`+aID+`')`,
		time.Duration(holdMs)*time.Millisecond+3*time.Second); err != nil {
		t.Error(err)
	} else if d := time.Since(revoked); d < time.Duration(holdMs)*time.Millisecond-300*time.Millisecond {
		t.Errorf("A left the main window %v after the revoke, want the %d ms hold time first", d, holdMs)
	} else {
		t.Logf("A left B's main window %v after the revoke (hold %d ms)", d.Round(time.Millisecond), holdMs)
	}
	l = eval[pageLayout](t, siteB, `window.cauState.layout()`)
	if w := l.inMain(chairID); w == nil || w.Window != "chair" {
		t.Errorf("B's main windows %+v after the revoke: want the chair still there", l.Main)
	}
	if err := siteA.waitFor(t, "A's mic button off the air again",
		`document.getElementById('mic-button').disabled && document.getElementById('floor-button').dataset.action === 'request'`,
		5*time.Second); err != nil {
		t.Error(err)
	}
	siteB.screenshot(t, dir, "after-revoke")

	// Directed mode: the chair gives B the camera only, from the grant form.
	if err := chair.run(t, 10*time.Second, chromedp.Click(chromedp.ID("floor-mode-directed"))); err != nil {
		t.Fatalf("chair: click directed: %v", err)
	}
	if err := chair.waitFor(t, "the grant form with media choices", `window.cauState.floor.mode === 'directed' &&
		!document.getElementById('grant-media').hidden && !document.getElementById('grant-form').hidden`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := chair.run(t, 10*time.Second,
		chromedp.SetValue(chromedp.ID("grant-site"), "xa-b"),
		chromedp.Click(chromedp.ID("grant-mic")), // untick: camera only
		chromedp.Click(chromedp.ID("grant-button"))); err != nil {
		t.Fatalf("chair: grant B the camera: %v", err)
	}
	if err := siteB.waitFor(t, "B on air with the camera only",
		`document.getElementById('mic-button').disabled && !document.getElementById('cam-button').disabled &&
		 document.getElementById('floor-hint').textContent.includes('camera only')`, 5*time.Second); err != nil {
		t.Error(err)
	}
	siteB.screenshot(t, dir, "directed-camera-only")

	// Mute all: every site but the chair's mutes its microphone; grants end.
	if err := chair.run(t, 10*time.Second, chromedp.Click(chromedp.ID("mute-all-button"))); err != nil {
		t.Fatalf("chair: click mute all: %v", err)
	}
	for _, b := range []*browser{siteA, siteB} {
		if err := b.waitFor(t, "microphone muted by the chair",
			`document.getElementById('mic-button').classList.contains('off') && window.cauState.floor.mute_epoch === 1`,
			5*time.Second); err != nil {
			t.Error(err)
		}
	}
	if eval[bool](t, chair, `document.getElementById('mic-button').classList.contains('off')`) {
		t.Error("mute all muted the chair's own microphone")
	}

	// End meeting, confirmed in the dialog: every page shows the end screen.
	if err := chair.run(t, 10*time.Second, chromedp.Click(chromedp.ID("end-meeting-button"))); err != nil {
		t.Fatalf("chair: click end meeting: %v", err)
	}
	if err := chair.waitFor(t, "the confirmation", `document.getElementById('end-dialog').open`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	chair.screenshot(t, dir, "end-confirm")
	if err := chair.run(t, 10*time.Second, chromedp.Click(chromedp.ID("end-confirm"))); err != nil {
		t.Fatalf("chair: confirm end: %v", err)
	}
	for _, b := range bs {
		if err := b.waitFor(t, "the meeting-ended screen", `!document.getElementById('end-screen').hidden &&
			document.getElementById('end-title').textContent === 'The meeting has ended'`, 5*time.Second); err != nil {
			t.Error(err)
		}
	}
	siteA.screenshot(t, dir, "ended")
}
