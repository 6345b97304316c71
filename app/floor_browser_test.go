package app_test

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/testbrowser"
)

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
	s := newStage(t, false)
	a, dir := s.app, s.dir
	bs := s.browsers(testbrowser.Options{}, "chair", "xa-a", "xa-b")
	chair, siteA, siteB := bs[0], bs[1], bs[2]

	// The chair joins first: in an ad hoc meeting the first chair's site chairs it.
	const joined = `window.cauState && window.cauState.joined`
	if err := chair.Open(s.joinURL(a.Keys(), "hop-tinh", "central", "UBND tỉnh", auth.RoleChair), "join", joined, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	joinErrs := make(chan error, 2)
	for b, u := range map[*browser]string{
		siteA: s.joinURL(a.Keys(), "hop-tinh", "xa-a", "UBND xã A", auth.RoleParticipant),
		siteB: s.joinURL(a.Keys(), "hop-tinh", "xa-b", "UBND xã B", auth.RoleParticipant),
	} {
		go func() { joinErrs <- b.Open(u, "join", joined, 20*time.Second) }()
	}
	for range 2 {
		if err := <-joinErrs; err != nil {
			t.Fatal(err)
		}
	}
	chairID := testbrowser.Eval[string](t, chair, `window.cauState.selfId`)
	aID := testbrowser.Eval[string](t, siteA, `window.cauState.selfId`)
	holdMs := testbrowser.Eval[int](t, siteB, `window.cauState.holdMs`)
	if holdMs != 3000 {
		t.Errorf("talk hold time %d ms, want the default 3000", holdMs)
	}
	for _, b := range bs {
		if err := b.WaitFor("the floor chaired by central, everyone here",
			`window.cauState.floor?.chair_site === 'central' && window.cauState.participants.length === 2`, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if testbrowser.Eval[bool](t, siteA, `document.getElementById('floor-chair').hidden`) != true {
		t.Error("a participant's page shows the chair's controls")
	}

	// Training mode: only the chair site is on air; A's microphone button says why not.
	if err := chair.Run(10*time.Second, chromedp.Click(chromedp.ID("floor-mode-training"))); err != nil {
		t.Fatalf("chair: click training: %v", err)
	}
	for _, b := range bs {
		if err := b.WaitFor("training mode", `window.cauState.floor?.mode === 'training' &&
			document.getElementById('floor-mode').dataset.mode === 'training'`, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := siteA.WaitFor("mic off the air, with a hint and a request button",
		`document.getElementById('mic-button').disabled && !document.getElementById('floor-hint').hidden &&
		 !document.getElementById('floor-button').hidden &&
		 document.getElementById('floor-button').dataset.action === 'request'`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// B: the chair in the first main window, and no other: a mode switch ends every grant
	// and applies at once (A may have been voice-switched there in discussion mode).
	if err := siteB.WaitFor("the chair large, alone",
		`(() => { const l = window.cauState.layout();
		   return l.main.length === 1 && l.main[0].participant === '`+chairID+`' && l.main[0].window === 'chair'; })()`,
		2*time.Second); err != nil {
		t.Fatalf("%v; layout %s", err, testbrowser.Eval[string](t, siteB, `JSON.stringify(window.cauState.layout())`))
	}

	// A asks for the floor; the chair sees the request and grants it.
	if err := siteA.Run(10*time.Second, chromedp.Click(chromedp.ID("floor-button"))); err != nil {
		t.Fatalf("xa-a: click request: %v", err)
	}
	grant := `#floor-requests li[data-site="xa-a"] button[data-action="grant"]`
	if err := chair.WaitFor("A's request in the queue", `document.querySelector('`+grant+`') !== null`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := siteA.WaitFor("A's button offers to withdraw",
		`document.getElementById('floor-button').dataset.action === 'withdraw'`, 5*time.Second); err != nil {
		t.Error(err)
	}
	chair.Shot(t, dir, "request")
	if err := chair.Run(10*time.Second, chromedp.Click(chromedp.CSS(grant))); err != nil {
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
	if err := siteB.WaitFor("A playing in the speaker window", speaking, 15*time.Second); err != nil {
		t.Fatalf("%v; layout %s", err, testbrowser.Eval[string](t, siteB, `JSON.stringify(window.cauState.layout())`))
	}
	if err := siteA.WaitFor("A's mic button enabled, and a yield button",
		`!document.getElementById('mic-button').disabled && document.getElementById('floor-hint').hidden &&
		 document.getElementById('floor-button').dataset.action === 'yield'`, 5*time.Second); err != nil {
		t.Error(err)
	}
	siteB.Shot(t, dir, "speaker")
	siteA.Shot(t, dir, "speaking")
	chair.Shot(t, dir, "granted")

	// The chair revokes: A leaves B's main window, but only after the hold time.
	revoke := `#floor-speakers li[data-site="xa-a"] button[data-action="revoke"]`
	if err := chair.Run(10*time.Second, chromedp.Click(chromedp.CSS(revoke))); err != nil {
		t.Fatalf("chair: click revoke: %v", err)
	}
	revoked := time.Now()
	if err := siteB.WaitFor("the revoke", `window.cauState.floor.speakers.length === 0`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	var l pageLayout
	l = testbrowser.Eval[pageLayout](t, siteB, `window.cauState.layout()`)
	if time.Since(revoked) < time.Duration(holdMs)*time.Millisecond/2 {
		if w := l.inMain(aID); w == nil {
			t.Errorf("A left the main window %v after the revoke, before the %d ms hold time", time.Since(revoked), holdMs)
		} else if w.Window != "previous" {
			t.Errorf("A held in the main window as %q after the revoke, want previous", w.Window)
		}
	}
	if err := siteB.WaitFor("A out of the main window",
		`!window.cauState.layout().main.some((m) => m.participant === '`+aID+`')`,
		time.Duration(holdMs)*time.Millisecond+3*time.Second); err != nil {
		t.Error(err)
	} else if d := time.Since(revoked); d < time.Duration(holdMs)*time.Millisecond-300*time.Millisecond {
		t.Errorf("A left the main window %v after the revoke, want the %d ms hold time first", d, holdMs)
	} else {
		t.Logf("A left B's main window %v after the revoke (hold %d ms)", d.Round(time.Millisecond), holdMs)
	}
	l = testbrowser.Eval[pageLayout](t, siteB, `window.cauState.layout()`)
	if w := l.inMain(chairID); w == nil || w.Window != "chair" {
		t.Errorf("B's main windows %+v after the revoke: want the chair still there", l.Main)
	}
	if err := siteA.WaitFor("A's mic button off the air again",
		`document.getElementById('mic-button').disabled && document.getElementById('floor-button').dataset.action === 'request'`,
		5*time.Second); err != nil {
		t.Error(err)
	}
	siteB.Shot(t, dir, "after-revoke")

	// Directed mode: the chair gives B the camera only, from the grant form.
	if err := chair.Run(10*time.Second, chromedp.Click(chromedp.ID("floor-mode-directed"))); err != nil {
		t.Fatalf("chair: click directed: %v", err)
	}
	if err := chair.WaitFor("the grant form with media choices", `window.cauState.floor.mode === 'directed' &&
		!document.getElementById('grant-media').hidden && !document.getElementById('grant-form').hidden`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := chair.Run(10*time.Second,
		chromedp.SetValue(chromedp.ID("grant-site"), "xa-b"),
		chromedp.Click(chromedp.ID("grant-mic")), // untick: camera only
		chromedp.Click(chromedp.ID("grant-button"))); err != nil {
		t.Fatalf("chair: grant B the camera: %v", err)
	}
	if err := siteB.WaitFor("B on air with the camera only",
		`document.getElementById('mic-button').disabled && !document.getElementById('cam-button').disabled &&
		 document.getElementById('floor-hint').textContent.includes('camera only')`, 5*time.Second); err != nil {
		t.Error(err)
	}
	siteB.Shot(t, dir, "directed-camera-only")

	// Mute all: every site but the chair's mutes its microphone; grants end.
	if err := chair.Run(10*time.Second, chromedp.Click(chromedp.ID("mute-all-button"))); err != nil {
		t.Fatalf("chair: click mute all: %v", err)
	}
	for _, b := range []*browser{siteA, siteB} {
		if err := b.WaitFor("microphone muted by the chair",
			`document.getElementById('mic-button').classList.contains('off') && window.cauState.floor.mute_epoch === 1`,
			5*time.Second); err != nil {
			t.Error(err)
		}
	}
	if testbrowser.Eval[bool](t, chair, `document.getElementById('mic-button').classList.contains('off')`) {
		t.Error("mute all muted the chair's own microphone")
	}

	// End meeting, confirmed in the dialog: every page shows the end screen.
	if err := chair.Run(10*time.Second, chromedp.Click(chromedp.ID("end-meeting-button"))); err != nil {
		t.Fatalf("chair: click end meeting: %v", err)
	}
	if err := chair.WaitFor("the confirmation", `document.getElementById('end-dialog').open`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	chair.Shot(t, dir, "end-confirm")
	if err := chair.Run(10*time.Second, chromedp.Click(chromedp.ID("end-confirm"))); err != nil {
		t.Fatalf("chair: confirm end: %v", err)
	}
	for _, b := range bs {
		if err := b.WaitFor("the meeting-ended screen", `!document.getElementById('end-screen').hidden &&
			document.getElementById('end-title').textContent === 'The meeting has ended'`, 5*time.Second); err != nil {
			t.Error(err)
		}
	}
	siteA.Shot(t, dir, "ended")
}
