package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/testbrowser"
	"github.com/cau-project/cau/internal/testmedia"
	"github.com/cau-project/cau/internal/wan"
)

// whipPublish publishes a pion encoder into meeting with one WHIP POST, as OBS does, and
// starts its test pattern; it returns the resource's URL.
func whipPublish(t *testing.T, a *app.App, meeting, site, name string) string {
	t.Helper()
	enc := testmedia.NewPublisher(t, "encoder", 0)
	tok, err := a.Keys().Sign(auth.Claims{Use: auth.UseJoin, Meeting: meeting, Site: site, Name: name, Role: auth.RoleParticipant}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	loc := enc.PublishWHIP(t, a.URL(), meeting, tok)
	enc.Start(func(int) *testmedia.Clip { return testmedia.MakeClip(t, 320, 240) })
	return loc
}

// TestBrowserFirefoxFirewalledRoomAndWHIP is issue 14's "done when": an official on
// Firefox, a room whose Chromium sits behind a firewall that lets only TCP to 443 out
// (relay-only, through the embedded TURN over TLS), and a WHIP encoder join one meeting.
// The two pages each play the other page's camera and the encoder's, with frames
// advancing, and list the encoder among the participants.
func TestBrowserFirefoxFirewalledRoomAndWHIP(t *testing.T) {
	chromium := testbrowser.Require(t)
	firefox := testbrowser.FirefoxPath(t)
	testmedia.Need(t)
	fw := wan.NewFirewalled(t, "10.215.0")
	dir := artifactDir(t)
	logs := &syncBuffer{}
	dumpOnFailure(t, dir, logs)

	a := startForFirewall(t, fw, logs, slog.LevelInfo)
	origin := a.URL()

	var wg sync.WaitGroup
	var room *browser
	var ff *testbrowser.Firefox
	var roomErr, ffErr error
	wg.Go(func() {
		room, roomErr = startChromium(t, fw.Wrapper(t, t.TempDir(), chromium), "room-behind-firewall", origin, logs,
			map[string]any{"ignore-certificate-errors": true})
	})
	// The page is served on the veth's address, not loopback: let Firefox treat it as
	// a secure context for the camera, as the Chromium flag above does.
	wg.Go(func() {
		ff, ffErr = testbrowser.StartFirefox(t, firefox, map[string]any{
			"media.devices.insecure.enabled": true, "media.getusermedia.insecure.enabled": true,
			"dom.securecontext.allowlist": fw.WebIP,
		}, logs.Printf)
	})
	wg.Wait()
	if roomErr != nil || ffErr != nil {
		t.Fatal(roomErr, ffErr)
	}
	official := firefoxPage{nm: "official (firefox)", f: ff}
	defer func() {
		if t.Failed() {
			room.Shot(t, dir, "failed")
			dumpStats(room)
		}
	}()

	encoder := whipPublish(t, a, "all", "hue", "Bộ mã hoá Huế")
	t.Logf("WHIP encoder published: %s", encoder)

	// The room: relay-only, TURN over TLS on 443 only.
	if err := room.Run(10*time.Second, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: relayOnly})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	if err := room.Run(30*time.Second, chromedp.Navigate(origin+"/healthz"),
		chromedp.Evaluate[chromedp.Void](`sessionStorage.setItem('turnScheme', 'turns:')`),
		chromedp.Navigate(joinURL(t, a, a.Keys(), "all", "ha-noi", "Phòng họp Hà Nội"))); err != nil {
		t.Fatalf("room: open join page: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	if err := ff.Navigate(ctx, joinURL(t, a, a.Keys(), "all", "hcm", "Cán bộ Trần")); err != nil {
		cancel()
		t.Fatalf("official: open join page: %v", err)
	}
	cancel()

	pages := []pagePlayer{chromiumPage{room}, official}
	names := map[string]string{}
	for _, p := range pages {
		if err := p.waitFor(t, "join", `window.cauState && window.cauState.joined`, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		var id string
		if err := p.value(t, `window.cauState.selfId`, &id); err != nil {
			t.Fatal(err)
		}
		names[p.name()] = id
	}
	var encoderID string
	for _, p := range a.Signaling().Participants("all") {
		if p.Site == "hue" {
			encoderID = p.ID
		}
	}
	if encoderID == "" {
		t.Fatalf("the WHIP encoder is not a participant: %+v", a.Signaling().Participants("all"))
	}
	// Each page plays two cameras, the other page's and the encoder's, both advancing.
	twoPlaying := func(want ...string) string {
		return fmt.Sprintf(`(() => { const v = %s;
			const ok = (id) => v.some((x) => x.participant === id && x.source === 'camera' && x.width > 0 && x.frames > 0);
			return v.length === 2 && %q.split(',').every(ok); })()`, remoteVideosJS, strings.Join(want, ","))
	}
	advancing := `(() => { const v = ` + remoteVideosJS + `;
		if (v.length !== 2) return false;
		const b = window.__adv2;
		if (!b) { window.__adv2 = Object.fromEntries(v.map((x) => [x.participant, x.frames])); return false; }
		return v.every((x) => b[x.participant] !== undefined && x.frames >= b[x.participant] + 10); })()`
	others := map[string]string{"room-behind-firewall": names["official (firefox)"], "official (firefox)": names["room-behind-firewall"]}
	for _, p := range pages {
		if err := p.waitFor(t, "the other page's and the encoder's cameras playing", twoPlaying(others[p.name()], encoderID), 60*time.Second); err != nil {
			t.Error(err)
			continue
		}
		if err := p.waitFor(t, "both remote videos advancing", advancing, 20*time.Second); err != nil {
			t.Error(err)
		}
		var listed bool
		if err := p.value(t, fmt.Sprintf(`!!document.querySelector('[data-participant=%q]')`, encoderID), &listed); err != nil || !listed {
			t.Errorf("%s: the encoder has no tile (%v)", p.name(), err)
		}
		var v []remoteVideo
		if err := p.value(t, remoteVideosJS, &v); err == nil {
			t.Logf("%s plays %+v", p.name(), v)
		}
	}
	ctx, cancel = context.WithTimeout(room.Context(), 10*time.Second)
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](selectedRelay, chromedp.EvalAwaitPromise))
	cancel()
	if err != nil || got != "relay/tls,relay/tls" {
		t.Errorf("room: selected local candidates %q (%v), want both connections relayed over TLS", got, err)
	}
	room.Shot(t, dir, "three-way")
}
