package signaling_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cau-project/cau/bridge"
	"github.com/cau-project/cau/bridge/control"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/sfu"
	"github.com/cau-project/cau/signaling"
)

// withMetrics gives the server's config a fresh registry's metrics and returns the registry.
func withMetrics(t testing.TB, c *signaling.Config) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := signaling.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	c.Metrics = m
	return reg
}

// dialTok joins with tok; the client is closed at the end of the test.
func dialTok(t *testing.T, ts *testServer, tok string) (*client.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, ts.ws, tok, client.Options{Loopback: true, Logger: logger()})
	if err == nil {
		t.Cleanup(c.Close)
	}
	return c, err
}

// refusedWith checks a join failed with the error code and the close code the caps give.
func refusedWith(t *testing.T, err error, code string, what string) {
	t.Helper()
	var ce *websocket.CloseError
	if err == nil || !strings.Contains(err.Error(), code) {
		t.Fatalf("%s: %v, want error %s", what, err, code)
	}
	if errors.As(err, &ce) && ce.Code != websocket.CloseTryAgainLater {
		t.Fatalf("%s: closed with %d, want %d", what, ce.Code, websocket.CloseTryAgainLater)
	}
}

// TestTokenCaps (issue 12, finding 4): one join token holds at most MaxSessionsPerToken
// sessions at once and makes at most MaxJoinsPerTokenPerMinute join attempts a minute.
// Before the caps a leaked link opened any number of sessions. Refusals answer capacity
// or rate_limited, close 1013, are counted by limit, and touch neither the token's
// admitted sessions nor anyone else's media.
func TestTokenCaps(t *testing.T) {
	var reg *prometheus.Registry
	ts := startServer(t, func(c *signaling.Config) {
		reg = withMetrics(t, c)
		c.MaxSessionsPerToken, c.MaxJoinsPerTokenPerMinute = 2, 4
	})
	chair := ts.publisher(t, "m1", "central", "Chủ trì")
	tok := ts.token(t, "m1", "commune", "Xã")
	first, err := dialTok(t, ts, tok) // attempt 1
	if err != nil {
		t.Fatal(err)
	}
	second, err := dialTok(t, ts, tok) // attempt 2
	if err != nil {
		t.Fatal(err)
	}
	_, err = dialTok(t, ts, tok) // attempt 3: two sessions open
	refusedWith(t, err, protocol.CodeCapacity, "a third session with one token")
	eventually(t, 15*time.Second, func() string { return receivesFrom(second, chair, 20) })

	first.Close()
	eventually(t, 5*time.Second, func() string {
		if n := len(ts.sig.Participants("m1")); n != 2 {
			return fmt.Sprintf("%d participants, want the chair and the second session", n)
		}
		return ""
	})
	if _, err := dialTok(t, ts, tok); err != nil { // attempt 4: one open, room for another
		t.Fatalf("a session after one of the token's two closed: %v", err)
	}
	_, err = dialTok(t, ts, tok) // attempt 5: over 4 a minute
	refusedWith(t, err, protocol.CodeRateLimited, "a fifth join in a minute")

	// Another token is not affected, and the admitted session still receives.
	if _, err := dialTok(t, ts, ts.token(t, "m1", "district", "Huyện")); err != nil {
		t.Fatalf("another token: %v", err)
	}
	keepsReceiving(t, second, chair, "video", 30, 10*time.Second)
	for limit, want := range map[string]float64{"token_sessions": 1, "token_joins": 1} {
		if got := testutil.Counter(t, reg, "cau_signaling_limited_total", "limit", limit); got != want {
			t.Errorf("cau_signaling_limited_total{limit=%q} = %v, want %v", limit, got, want)
		}
	}
}

// TestTokenCapsForgetIdleTokens: the caps remember a token only while it has a session
// open or was used lately; tokens whose sessions all ended are pruned, so the server does
// not keep a record of every token it ever saw (issue 12, finding 4: maps never pruned).
func TestTokenCapsForgetIdleTokens(t *testing.T) {
	ts := startServer(t, nil)
	ts.sig.ForgetIdleTokensAfter(200 * time.Millisecond)
	stay := ts.join(t, "m1", "central", "Chủ trì")
	for i := range 5 {
		c, err := dialTok(t, ts, ts.token(t, "m1", fmt.Sprintf("site-%d", i), "Xã"))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	eventually(t, 10*time.Second, func() string {
		if n := ts.sig.TokensTracked(); n != 1 {
			return fmt.Sprintf("the caps remember %d tokens, want 1 (the one with a session open)", n)
		}
		return ""
	})
	select {
	case <-stay.Done():
		t.Fatalf("the open session ended: %v", stay.Err())
	default:
	}
}

// TestBridgePeerCap (issue 12, finding 4): a bridge serves at most its configured number
// of endpoints. Before the cap a bridge took every endpoint placed on it. Now an endpoint
// of a full bridge's site is placed on the next bridge up the tree and its media flows
// across the relay; when every bridge that could serve the site is full the join gets
// capacity and close 1013, and the refusal is counted; once the bridge has room again
// it takes its site's endpoints.
func TestBridgePeerCap(t *testing.T) {
	c := startCascade(t)
	provReg, localReg := prometheus.NewRegistry(), prometheus.NewRegistry()
	provLimits, err := bridge.NewLimitMetrics(provReg)
	if err != nil {
		t.Fatal(err)
	}
	localLimits, err := bridge.NewLimitMetrics(localReg)
	if err != nil {
		t.Fatal(err)
	}
	c.addBridgeWith(t, "br-prov", "prov", func(cfg *bridge.ClientConfig) { cfg.MaxPeers, cfg.Limits = 1, provLimits })
	c.sig.Local().Agent().SetMaxPeers(2, localLimits)
	eventually(t, 5*time.Second, func() string {
		if len(c.sig.Bridges()) != 2 {
			return "br-prov has not registered"
		}
		return ""
	})
	placed := func(cl *client.Client) string { return c.sig.Placement("m1")[cl.Self.ID] }

	chair := c.publisher(t, "m1", "central", "Chủ trì") // central: 1 of 2
	a := c.publisher(t, "m1", "prov", "Tỉnh A")         // br-prov: 1 of 1
	b := c.publisher(t, "m1", "prov", "Tỉnh B")         // br-prov is full: central, 2 of 2
	if got := placed(a); got != "br-prov" {
		t.Fatalf("the first endpoint of prov is on %q, want br-prov", got)
	}
	if got := placed(b); got != string(ids.LocalBridge) {
		t.Fatalf("the endpoint over br-prov's cap is on %q, want the central bridge", got)
	}
	for _, pair := range [][2]*client.Client{{a, b}, {b, a}, {chair, a}, {chair, b}} {
		eventually(t, 20*time.Second, func() string { return receivesFrom(pair[0], pair[1], 30) })
	}

	// Both bridges that could serve prov are full: refused, counted, nobody else moved.
	_, err = dialTok(t, c.testServer, c.token(t, "m1", "prov", "Tỉnh C"))
	refusedWith(t, err, protocol.CodeCapacity, "a join when every bridge for its site is full")
	if got := testutil.Counter(t, localReg, "cau_bridge_peers_refused_total"); got != 1 {
		t.Errorf("the central bridge counted %v refusals, want 1", got)
	}
	keepsReceiving(t, a, b, "video", 30, 10*time.Second)

	// br-prov has room again once A leaves: its site's next endpoint lands there.
	a.Close()
	eventually(t, 20*time.Second, func() string {
		d, err := dialTok(t, c.testServer, c.token(t, "m1", "prov", "Tỉnh D"))
		if err != nil {
			return fmt.Sprintf("a join after br-prov has room: %v", err)
		}
		defer d.Close()
		if got := placed(d); got != "br-prov" {
			return fmt.Sprintf("the endpoint is on %q, want br-prov", got)
		}
		return ""
	})
}

// TestBridgePeerCapPerBridge (issue 12, finding 4): a bridge registered with two
// signaling nodes (one control connection each, one media engine) holds its cap for the
// process: with a cap of one, the endpoint the first node placed on it fills it, and the
// second node places its endpoint elsewhere. Before, each connection had its own count,
// so N nodes could place N × cap endpoints on one bridge.
func TestBridgePeerCapPerBridge(t *testing.T) {
	c1, c2 := startCascade(t), startCascade(t)
	b, err := sfu.New(sfu.Config{ICEUDPPort: 0, ICETCPPort: -1, IncludeLoopback: true, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	shared := bridge.NewShared(b, bridge.SharedConfig{MaxPeers: 1, Logger: logger()}) // one per process
	for _, c := range []*cascade{c1, c2} {
		tok, err := c.keys.Sign(control.BridgeClaims("prov", "br-prov"), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		runBridge(t, bridge.ClientConfig{SignalURL: c.url + "/bridge", Token: tok, ID: "br-prov", Site: "prov",
			Bridge: b, Logger: logger(), Shared: shared})
		eventually(t, 5*time.Second, func() string {
			if len(c.sig.Bridges()) != 2 {
				return "br-prov has not registered"
			}
			return ""
		})
	}
	a := c1.publisher(t, "m1", "prov", "Tỉnh A")
	if got := c1.sig.Placement("m1")[a.Self.ID]; got != "br-prov" {
		t.Fatalf("the first endpoint is on %q, want br-prov", got)
	}
	chair := c1.join(t, "m1", "central", "Chủ trì")
	eventually(t, 20*time.Second, func() string { return receivesFrom(chair, a, 20) })
	other := c2.publisher(t, "m2", "prov", "Tỉnh B")
	if got := c2.sig.Placement("m2")[other.Self.ID]; got != string(ids.LocalBridge) {
		t.Fatalf("the second node placed its endpoint on %q, want its own bridge (br-prov is full)", got)
	}
	keepsReceiving(t, chair, a, "audio", 20, 10*time.Second)
}
