package app_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/testbrowser"
	"github.com/cau-project/cau/internal/testkit"
)

// TestBrowserTwoParticipants: two officials join one meeting from two browsers, each sees
// the other's video playing, one leaves, and the other's grid loses them at once.
func TestBrowserTwoParticipants(t *testing.T) {
	s := newStage(t, false)
	a, dir := s.app, s.dir
	bs := s.browsers(testbrowser.Options{}, "alice", "bob")
	alice, bob := bs[0], bs[1]
	pages := map[*browser]string{
		alice: s.joinURL(a.Keys(), "m1", "hcm", "Alice Nguyễn", auth.RoleParticipant),
		bob:   s.joinURL(a.Keys(), "m1", "ha-noi", "Bob Trần", auth.RoleParticipant),
	}

	errs := make(chan error, 2)
	for b, u := range pages {
		go func() { errs <- b.Open(u, "join", `window.cauState && window.cauState.joined`, 20*time.Second) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	aliceID := testbrowser.Eval[string](t, alice, `window.cauState.selfId`)
	bobID := testbrowser.Eval[string](t, bob, `window.cauState.selfId`)
	if aliceID == "" || bobID == "" || aliceID == bobID {
		t.Fatalf("self ids %q and %q: want two distinct ids", aliceID, bobID)
	}

	// Each sees the other's camera playing: a decoded picture, and frames still coming.
	playing := `(() => { const v = window.cauState.remoteVideos();
		return v.length > 0 && v.every((x) => x.width > 0 && x.height > 0 && x.frames > 0); })()`
	for b := range pages {
		go func() { errs <- b.WaitFor("remote video playing", playing, 45*time.Second) }()
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
		if err := b.WaitFor("remote video advancing", advancing, 20*time.Second); err != nil {
			t.Error(err)
			dumpStats(b)
		} else if d := time.Since(start); d > 3*time.Second {
			t.Logf("%s: the remote video took %v to advance by 10 frames; stats in the log", b.Name, d.Round(time.Millisecond))
			dumpStats(b)
		}
		v := testbrowser.Eval[[]remoteVideo](t, b, `window.cauState.remoteVideos()`)
		if len(v) != 1 || v[0].Participant != want || v[0].Source != "camera" {
			t.Errorf("%s: remote videos %+v, want exactly one: %s's camera", b.Name, v, want)
		} else {
			t.Logf("%s sees %s: %dx%d, %d frames", b.Name, v[0].Participant, v[0].Width, v[0].Height, v[0].Frames)
		}
		if got := testbrowser.Eval[[]string](t, b, `window.cauState.participants`); len(got) != 1 || got[0] != want {
			t.Errorf("%s: participants %q, want [%q]", b.Name, got, want)
		}
		label := testbrowser.Eval[string](t, b, `document.querySelector('#grid .tile .name').textContent`)
		if wantName := map[*browser]string{alice: "Bob Trần", bob: "Alice Nguyễn"}[b]; label != wantName {
			t.Errorf("%s: tile label %q, want %q", b.Name, label, wantName)
		}
		if n := testbrowser.Eval[int](t, b, `window.cauState.reconnects`); n != 0 {
			t.Errorf("%s: the page reconnected %d times (a media connection failed?); see the log", b.Name, n)
		}
	}
	alice.Shot(t, dir, "in-meeting")
	bob.Shot(t, dir, "in-meeting")

	// Alice shares her screen (a renegotiation of her publisher connection): Bob sees it
	// large on the stage, his view of her camera keeps playing; she stops: it goes.
	if err := alice.Run(10*time.Second, chromedp.Click(chromedp.ID("screen-button"))); err != nil {
		t.Fatalf("alice: click share: %v", err)
	}
	if err := alice.WaitFor("alice is sharing",
		`document.getElementById('screen-button').getAttribute('aria-pressed') === 'true'`, 10*time.Second); err != nil {
		t.Fatalf("%v (page errors: %s)", err, testbrowser.Eval[string](t, alice, `JSON.stringify(window.cauState.errors)`))
	}
	if err := bob.WaitFor("alice's screen playing on the stage",
		`document.querySelector('#stage .tile[data-participant="`+aliceID+`"]') !== null &&
		 window.cauState.remoteVideos().some((v) => v.source === 'screen' && v.width > 0 && v.frames > 0)`,
		20*time.Second); err != nil {
		t.Error(err)
	}
	bob.Shot(t, dir, "screen-share")
	if err := bob.WaitFor("alice's camera still playing", `(() => {
		const c = window.cauState.remoteVideos().find((v) => v.source === 'camera');
		if (!c) return false;
		if (window.__lastFrames === undefined || c.frames < window.__lastFrames) { window.__lastFrames = c.frames; return false; }
		return c.frames > window.__lastFrames + 5; })()`, 10*time.Second); err != nil {
		t.Error(err)
		dumpStats(alice)
		dumpStats(bob)
	}
	if err := alice.Run(10*time.Second, chromedp.Click(chromedp.ID("screen-button"))); err != nil {
		t.Fatalf("alice: click stop sharing: %v", err)
	}
	if err := bob.WaitFor("alice's screen gone from the stage",
		`document.querySelectorAll('#stage .tile').length === 0 && document.getElementById('stage').hidden &&
		 window.cauState.remoteVideos().every((v) => v.source !== 'screen')`, 5*time.Second); err != nil {
		t.Error(err)
	}

	// Bob mutes his microphone: Alice's tile shows the muted icon.
	if err := bob.Run(10*time.Second, chromedp.Click(chromedp.ID("mic-button"))); err != nil {
		t.Fatalf("bob: click mute: %v", err)
	}
	if err := alice.WaitFor("bob's tile shows mic muted",
		`document.querySelector('#grid .tile.mic-muted') !== null`, 5*time.Second); err != nil {
		t.Error(err)
	}

	// Bob leaves: Alice's grid loses him within 2 s.
	if err := bob.Run(10*time.Second, chromedp.Click(chromedp.ID("leave-button"))); err != nil {
		t.Fatalf("bob: click leave: %v", err)
	}
	left := time.Now()
	if err := alice.WaitFor("bob gone from the grid",
		`window.cauState.participants.length === 0 && window.cauState.remoteVideos().length === 0 &&
		 document.querySelectorAll('#grid .tile').length === 0`, 2*time.Second); err != nil {
		t.Error(err)
	} else {
		t.Logf("alice's grid lost bob %v after the click", time.Since(left).Round(time.Millisecond))
	}
	if err := bob.WaitFor("bob sees the end screen",
		`!document.getElementById('end-screen').hidden && !window.cauState.joined`, 5*time.Second); err != nil {
		t.Error(err)
	}
	alice.Shot(t, dir, "after-leave")
	bob.Shot(t, dir, "after-leave")

	// A link signed with another key: the server refuses it and the page says so.
	bad := auth.Keys{Current: []byte("not-the-server-key-not-the-server-key")}
	if err := bob.Run(30*time.Second, chromedp.Navigate(s.joinURL(bad, "m1", "ha-noi", "Mallory", auth.RoleParticipant))); err != nil {
		t.Fatalf("bob: open bad link: %v", err)
	}
	if err := bob.WaitFor("invalid-link message",
		`!document.getElementById('end-screen').hidden &&
		 document.getElementById('end-title').textContent.includes('invalid or expired')`, 10*time.Second); err != nil {
		t.Error(err)
	} else {
		detail := testbrowser.Eval[string](t, bob, `document.getElementById('end-detail').textContent`)
		if !strings.Contains(detail, "Server:") {
			t.Errorf("bad link: detail %q does not show the server's message", detail)
		}
	}
	bob.Shot(t, dir, "bad-token")
	if got := testbrowser.Eval[[]string](t, alice, `window.cauState.participants`); len(got) != 0 {
		t.Errorf("alice: participants %q after a refused join, want none", got)
	}

	// The preview screen: Bob opens a link without autojoin; his name comes from name=,
	// he joins with the button and Alice sees him under that name.
	// The token carries no name (a token's name would win over the page's: issue 12, finding 5).
	preview := strings.Replace(s.joinURL(a.Keys(), "m1", "ha-noi", "", auth.RoleParticipant), "autojoin=1", "name=Ông+Bình", 1)
	if err := bob.Run(30*time.Second, chromedp.Navigate(preview)); err != nil {
		t.Fatalf("bob: open preview: %v", err)
	}
	if err := bob.WaitFor("preview with camera", `!document.getElementById('preview-screen').hidden &&
		document.getElementById('preview-video').videoWidth > 0`, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := testbrowser.Eval[string](t, bob, `document.getElementById('name-input').value`); got != "Ông Bình" {
		t.Errorf("preview name %q, want %q (from name=)", got, "Ông Bình")
	}
	bob.Shot(t, dir, "preview")
	if err := bob.Run(10*time.Second, chromedp.Click(chromedp.ID("join-button"))); err != nil {
		t.Fatalf("bob: click join: %v", err)
	}
	if err := alice.WaitFor("bob back, named from the preview",
		`document.querySelector('#grid .tile .name')?.textContent === 'Ông Bình' &&
		 window.cauState.remoteVideos().some((v) => v.width > 0 && v.frames > 0)`, 20*time.Second); err != nil {
		t.Error(err)
	}
}

// TestBrowserReconnect: Bob's signaling connection drops; his page joins again by itself,
// Alice sees the old Bob go and the new one come, and video flows both ways again.
func TestBrowserReconnect(t *testing.T) {
	s := newStage(t, false)
	a, dir := s.app, s.dir
	proxy := testkit.NewCutProxy(t, strings.TrimPrefix(a.URL(), "http://"))
	bs := s.browsers(testbrowser.Options{}, "alice", "bob")
	alice, bob := bs[0], bs[1]
	bobURL := strings.Replace(s.joinURL(a.Keys(), "m2", "ha-noi", "Bob", auth.RoleParticipant), a.URL(), proxy.URL(), 1)
	for b, u := range map[*browser]string{alice: s.joinURL(a.Keys(), "m2", "hcm", "Alice", auth.RoleParticipant), bob: bobURL} {
		if err := b.Run(30*time.Second, chromedp.Navigate(u)); err != nil {
			t.Fatalf("%s: open join page: %v", b.Name, err)
		}
	}
	playing := `(() => { const v = window.cauState && window.cauState.joined && window.cauState.remoteVideos();
		return v && v.length === 1 && v[0].width > 0 && v[0].frames > 0; })()`
	for _, b := range []*browser{alice, bob} {
		if err := b.WaitFor("remote video playing", playing, 45*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	oldBob := testbrowser.Eval[string](t, bob, `window.cauState.selfId`)
	// A crowd of 100 endpoints with long names: more than one joined message lists, so
	// Bob's page learns the rest of the list from roster messages when it joins again,
	// and only then which of those it knew left while it was away (ten of them do).
	crowd := joinCrowd(t, a.Keys(), a.URL(), "m2", 100)

	proxy.Cut()
	for _, c := range crowd[:10] {
		_ = c.conn.Close()
	}
	if err := bob.WaitFor("rejoined with a new id",
		`window.cauState && window.cauState.joined && window.cauState.selfId !== '`+oldBob+`'`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	newBob := testbrowser.Eval[string](t, bob, `window.cauState.selfId`)
	for _, b := range []*browser{alice, bob} {
		if err := b.WaitFor("remote video playing after the reconnect", playing, 30*time.Second); err != nil {
			t.Error(err)
		}
	}
	aliceID := testbrowser.Eval[string](t, alice, `window.cauState.selfId`)
	for b, want := range map[*browser][]string{alice: crowdIDs(crowd[10:], newBob), bob: crowdIDs(crowd[10:], aliceID)} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := testbrowser.Eval[[]string](t, b, `window.cauState.participants`)
			slices.Sort(got)
			if slices.Equal(got, want) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: %d participants after bob's reconnect, want %d (the crowd's 90 and the other page)",
					b.Name, len(got), len(want))
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	alice.Shot(t, dir, "after-reconnect")
	bob.Shot(t, dir, "after-reconnect")
}

// crowdMember is an endpoint that joined over a bare socket and reads what it is sent.
type crowdMember struct {
	conn *websocket.Conn
	id   string
}

// joinCrowd joins n endpoints with long names (some communes' names are written out in
// full) to meeting, without media.
func joinCrowd(t *testing.T, keys auth.Keys, base, meeting string, n int) []crowdMember {
	t.Helper()
	out := make([]crowdMember, 0, n)
	for i := range n {
		name := fmt.Sprintf("Ủy ban nhân dân xã %03d", i) + strings.Repeat(" và các thôn, bản trực thuộc", 25)
		tok, err := keys.Sign(auth.Claims{Use: auth.UseJoin, Meeting: meeting, Site: fmt.Sprintf("crowd-%03d", i), Name: name,
			Role: auth.RoleParticipant}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		conn, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		t.Cleanup(func() { _ = conn.Close() })
		if err := conn.WriteJSON(map[string]any{"v": 1, "type": "join", "id": "j", "data": map[string]string{"token": tok}}); err != nil {
			t.Fatal(err)
		}
		for {
			var env struct {
				Type string `json:"type"`
				Data struct {
					Self struct{ ID string } `json:"self"`
				} `json:"data"`
			}
			if err := conn.ReadJSON(&env); err != nil {
				t.Fatalf("crowd %d: %v", i, err)
			}
			if env.Type == "joined" {
				out = append(out, crowdMember{conn: conn, id: env.Data.Self.ID})
				break
			}
		}
		go func() { // drain: a socket that reads nothing would hold its news
			for {
				if _, _, err := conn.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}
	return out
}

// crowdIDs lists the members' ids and more, sorted.
func crowdIDs(members []crowdMember, more ...string) []string {
	out := slices.Clone(more)
	for _, m := range members {
		out = append(out, m.id)
	}
	slices.Sort(out)
	return out
}
