package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/internal/testapp"
	"github.com/cau-project/cau/internal/testbrowser"
	"github.com/cau-project/cau/internal/wan"
	"github.com/cau-project/cau/turnserver"
)

// startChromium starts headless Chromium (execPath may be a wrapper that runs it in a
// network namespace) with fake devices, treating origin as secure (plain http on an
// address that is not loopback), and extra flags.
func startChromium(t *testing.T, execPath, name, origin string, logs *syncBuffer, extra map[string]any) (*browser, error) {
	flags := map[string]any{"unsafely-treat-insecure-origin-as-secure": origin}
	for k, v := range extra {
		flags[k] = v
	}
	return testbrowser.Start(t, testbrowser.Options{Name: name, Log: logs, Media: true, ExecPath: execPath, Flags: flags})
}

// relayOnly makes every RTCPeerConnection of the page relay-only, and keeps only the
// TURN URLs that start with window.__turnScheme ("turn:" or "turns:"): the page must
// reach the bridge through the embedded TURN server over that transport or not at all.
const relayOnly = `(() => {
	const Orig = window.RTCPeerConnection;
	const fix = (c) => {
		const out = Object.assign({}, c || {}, {iceTransportPolicy: 'relay'});
		const scheme = sessionStorage.getItem('turnScheme');
		if (out.iceServers && scheme) {
			out.iceServers = out.iceServers.map((s) => Object.assign({}, s,
				{urls: [].concat(s.urls).filter((u) => u.startsWith(scheme) && u.includes('transport=tcp'))}));
		}
		return out;
	};
	window.__pcs = [];
	window.RTCPeerConnection = function (c) { const pc = new Orig(fix(c)); window.__pcs.push(pc); return pc; };
	window.RTCPeerConnection.prototype = Orig.prototype;
	const set = Orig.prototype.setConfiguration;
	Orig.prototype.setConfiguration = function (c) { return set.call(this, fix(c)); };
})()`

// selectedRelay reports the local candidate of the subscriber connection's selected pair:
// "relay/tcp" or "relay/tls" when it goes through TURN over TCP or TLS.
const selectedRelay = `(async () => {
	const pcs = window.__pcs || [];
	const out = [];
	for (const pc of pcs) {
		if (pc.connectionState !== 'connected') continue;
		const stats = await pc.getStats();
		let pair = null;
		stats.forEach((r) => { if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId); });
		if (!pair) continue;
		const local = stats.get(pair.localCandidateId);
		out.push(local ? local.candidateType + '/' + (local.relayProtocol || local.protocol) : '?');
	}
	return out.join(',');
})()`

// startForFirewall starts cau (dev mode) for pages behind fw: the web server on fw's web
// address, port 443, and the embedded TURN server on its TURN address (UDP 3478, TCP and
// TLS on 443, a self-signed certificate), logging into logs from level up.
func startForFirewall(t *testing.T, fw *wan.Firewalled, logs *syncBuffer, level slog.Level) *app.App {
	t.Helper()
	cert, err := turnserver.SelfSigned([]string{fw.TURNIP}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := testapp.Start(t, app.Config{
		HTTPAddr: net.JoinHostPort(fw.WebIP, "443"), ICEUDPPort: 0, ICETCPPort: 0, Dev: true,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level})),
		TURN: app.TURNConfig{Secret: "turn-test-secret-0123456789", UDPAddr: net.JoinHostPort(fw.TURNIP, "3478"),
			TCPAddr: net.JoinHostPort(fw.TURNIP, "443"), Host: fw.TURNIP, Certificate: &cert},
	})
	return a
}

// TestBrowserTURNBehind443Firewall: an official's Chromium sits in a network namespace
// whose firewall drops all UDP and all TCP except to port 443, and its page is forced to
// relay-only ICE. It joins through the embedded TURN server, over TCP and then over TLS
// (both on 443), and plays the video of an official outside the firewall, who plays its.
func TestBrowserTURNBehind443Firewall(t *testing.T) {
	chromium := testbrowser.Require(t)
	fw := wan.NewFirewalled(t, "10.214.0")
	dir := artifactDir(t)
	logs := &syncBuffer{}
	dumpOnFailure(t, dir, logs)

	a := startForFirewall(t, fw, logs, slog.LevelDebug)
	origin := a.URL()

	var wg sync.WaitGroup
	var alice, bob *browser
	var aliceErr, bobErr error
	wg.Go(func() { alice, aliceErr = startChromium(t, chromium, "alice", origin, logs, nil) })
	wg.Go(func() {
		bob, bobErr = startChromium(t, fw.Wrapper(t, t.TempDir(), chromium), "bob-behind-firewall", origin, logs,
			map[string]any{"ignore-certificate-errors": true})
	})
	wg.Wait()
	if aliceErr != nil || bobErr != nil {
		t.Fatal(aliceErr, bobErr)
	}
	defer func() {
		if t.Failed() {
			for _, b := range []*browser{alice, bob} {
				b.Shot(t, dir, "failed")
				dumpStats(b)
			}
		}
	}()
	if err := bob.Run(10*time.Second, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: relayOnly})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	if err := alice.Run(30*time.Second, chromedp.Navigate(joinURL(t, a, a.Keys(), "fw", "hcm", "Alice"))); err != nil {
		t.Fatalf("alice: open join page: %v", err)
	}
	playing := `(() => { const v = window.cauState && window.cauState.joined && window.cauState.remoteVideos();
		return v && v.length === 1 && v[0].width > 0 && v[0].frames > 0; })()`
	advancing := `(() => {
		const v = window.cauState ? window.cauState.remoteVideos() : [];
		if (v.length !== 1) return false;
		const x = v[0], b = window.__adv;
		if (!b || b.p !== x.participant) { window.__adv = {p: x.participant, f: x.frames}; return false; }
		return x.frames >= b.f + 10; })()`

	for i, scheme := range []string{"turn:", "turns:"} {
		// The scheme filter lives in sessionStorage so it is set before the page's
		// scripts run: open the origin, set it, then open the join link.
		u := joinURL(t, a, a.Keys(), "fw", "ha-noi", fmt.Sprintf("Bob %d", i))
		if err := bob.Run(30*time.Second, chromedp.Navigate(origin+"/healthz"),
			chromedp.Evaluate[chromedp.Void](`sessionStorage.setItem('turnScheme', '`+scheme+`')`),
			chromedp.Navigate(u)); err != nil {
			t.Fatalf("bob (%s): open join page: %v", scheme, err)
		}
		if err := bob.WaitFor("remote video playing through TURN "+scheme, playing, 60*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := bob.WaitFor("remote video advancing", advancing, 20*time.Second); err != nil {
			t.Error(err)
		}
		if err := alice.WaitFor("alice plays bob's video", playing+` && `+advancing, 40*time.Second); err != nil {
			t.Error(err)
		}
		ctx, cancel := context.WithTimeout(bob.Context(), 10*time.Second)
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](selectedRelay, chromedp.EvalAwaitPromise))
		cancel()
		if err != nil {
			t.Fatalf("bob: selected pairs: %v", err)
		}
		want := map[string]string{"turn:": "relay/tcp", "turns:": "relay/tls"}[scheme]
		pairs := strings.Split(got, ",")
		if len(pairs) != 2 || pairs[0] != want || pairs[1] != want {
			t.Errorf("bob (%s): selected local candidates %q, want both connections on %s", scheme, got, want)
		} else {
			t.Logf("bob behind the 443-only firewall plays alice's video; both connections on %s", want)
		}
		bob.Shot(t, dir, strings.TrimSuffix(scheme, ":"))
	}
}
