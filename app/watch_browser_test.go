package app_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/testbrowser"
	"github.com/cau-project/cau/internal/testmedia"
)

// TestBrowserWHEPPlayer: the WHEP player page (/watch/<meeting>) in Chromium plays a
// WHIP encoder's camera and microphone: it speaks Vietnamese, takes the token out of the
// address bar, trickles its ICE candidates by PATCH, and its video frames advance and
// audio arrives; closing the page ends its session.
func TestBrowserWHEPPlayer(t *testing.T) {
	s := newStage(t, false)
	testmedia.Need(t)
	whipPublish(t, s.app, "xem", "hue", "Bộ mã hoá Huế")
	tok, err := s.app.Keys().Sign(auth.Claims{Use: auth.UseJoin, Meeting: "xem", Site: "ha-noi", Name: "Màn hình hội trường",
		Role: auth.RoleParticipant}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b := testbrowser.MustStart(t, testbrowser.Options{Log: s.log, Media: true, Name: "watch", Lang: "vi-VN,vi"}, "watch")[0]
	t.Cleanup(func() {
		if t.Failed() {
			b.Shot(t, s.dir, "failed")
		}
	})
	if err := b.Open(s.app.URL()+"/watch/xem?site=hue&token="+url.QueryEscape(tok), "watch",
		`window.cauWatch && window.cauWatch.state === 'playing' && document.getElementById('player').videoWidth > 0`, 30*time.Second); err != nil {
		t.Fatalf("%v (page state %s)", err, testbrowser.Eval[string](t, b, `JSON.stringify({s: window.cauWatch?.state, e: window.cauWatch?.error})`))
	}
	if href := testbrowser.Eval[string](t, b, `location.href`); strings.Contains(href, "token") {
		t.Errorf("the token stays in the address bar: %s", href)
	}
	if title := testbrowser.Eval[string](t, b, `document.title`); title != "Cầu — Xem cuộc họp" {
		t.Errorf("title %q, want the Vietnamese one", title)
	}
	frames := func() int {
		return testbrowser.Eval[int](t, b, `document.getElementById('player').getVideoPlaybackQuality().totalVideoFrames`)
	}
	f0 := frames()
	time.Sleep(2 * time.Second)
	if f1 := frames(); f1 <= f0 {
		t.Errorf("video frames do not advance: %d, then %d 2 s later", f0, f1)
	}
	audio, err := testbrowser.Await[int](b, `(async () => { let n = 0; (await window.cauWatch.pc.getStats()).forEach((r) => {
		if (r.type === 'inbound-rtp' && r.kind === 'audio') n = r.packetsReceived; }); return n; })()`, 10*time.Second)
	if err != nil || audio == 0 {
		t.Errorf("audio packets received: %d (%v)", audio, err)
	}
	if n := testbrowser.Eval[int](t, b, `window.cauWatch.patches`); n == 0 {
		t.Errorf("no trickle PATCH succeeded (error %q)", testbrowser.Eval[string](t, b, `window.cauWatch.error`))
	}
	b.Shot(t, s.dir, "playing")
	if ps := s.app.Signaling().Participants("xem"); len(ps) != 2 {
		t.Errorf("participants %+v, want the encoder and the player", ps)
	}
}
