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

	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/protocol"
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
