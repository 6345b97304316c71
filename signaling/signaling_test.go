package signaling_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/sfu"
	"github.com/cau-project/cau/signaling"
)

type testServer struct {
	keys auth.Keys
	ws   string
	sig  *signaling.Server
}

func logger() *slog.Logger { return testutil.Logger() }

func startServer(t testing.TB, mutate func(*signaling.Config)) *testServer {
	t.Helper()
	return startServerWith(t, mutate, func(sig *signaling.Server) http.Handler { return sig }, nil)
}

// startServerWith starts signaling with a local bridge behind the handler that handler
// builds; hsOut, if not nil, receives the HTTP test server.
func startServerWith(t testing.TB, mutate func(*signaling.Config), handler func(*signaling.Server) http.Handler,
	hsOut **httptest.Server) *testServer {
	t.Helper()
	b, err := sfu.New(sfu.Config{ICEUDPPort: 0, ICETCPPort: -1, IncludeLoopback: true, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	keys := testKeys
	cfg := signaling.Config{Bridge: b, Keys: keys, Logger: logger()}
	if mutate != nil {
		mutate(&cfg)
	}
	sig := signaling.New(cfg)
	hs := httptest.NewServer(handler(sig))
	if hsOut != nil {
		*hsOut = hs
	}
	t.Cleanup(func() {
		sig.Close()
		hs.Close()
		_ = b.Close()
	})
	return &testServer{keys: keys, ws: "ws" + strings.TrimPrefix(hs.URL, "http"), sig: sig}
}

func (ts *testServer) token(t testing.TB, meeting, site, name string) string {
	t.Helper()
	tok, err := ts.keys.Sign(auth.Claims{Use: auth.UseJoin, Meeting: meeting, Site: site, Name: name, Role: auth.RoleParticipant}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (ts *testServer) join(t testing.TB, meeting, site, name string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, ts.ws, ts.token(t, meeting, site, name), client.Options{Loopback: true, Logger: logger()})
	if err != nil {
		t.Fatalf("join %s: %v", name, err)
	}
	t.Cleanup(c.Close)
	return c
}

// publisher joins like join and publishes the client's synthetic camera and microphone.
func (ts *testServer) publisher(t testing.TB, meeting, site, name string) *client.Client {
	t.Helper()
	c := ts.join(t, meeting, site, name)
	if err := c.Publish(context.Background()); err != nil {
		t.Fatalf("publish %s: %v", name, err)
	}
	return c
}

// eventually is testutil.Eventually: poll until cond returns "" (the reason otherwise).
func eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	testutil.Eventually(t, timeout, cond)
}

func receivesFrom(rx, tx *client.Client, min int64) string {
	stream := tx.Self.Streams[protocol.SourceCamera]
	for _, kind := range []string{"audio", "video"} {
		s := rx.Stream(stream, kind)
		if s == nil || s.Packets.Load() < min {
			return fmt.Sprintf("%s has not received %d %s packets from %s", rx.Self.Name, min, kind, tx.Self.Name)
		}
	}
	return ""
}

// keepsReceiving waits until rx has n more of kind's packets on tx's camera stream than
// now: the media goes on after what the test just did (an attack, a bad message, a leave).
func keepsReceiving(t testing.TB, rx, tx *client.Client, kind string, n int64, timeout time.Duration) {
	t.Helper()
	stream := tx.Self.Streams[protocol.SourceCamera]
	s := rx.Stream(stream, kind)
	if s == nil {
		t.Fatalf("%s lost %s's %s", rx.Self.Name, tx.Self.Name, kind)
	}
	before := s.Packets.Load()
	eventually(t, timeout, func() string {
		if s := rx.Stream(stream, kind); s == nil || s.Packets.Load() < before+n {
			return fmt.Sprintf("%s stopped receiving %s's %s", rx.Self.Name, tx.Self.Name, kind)
		}
		return ""
	})
}

func TestMeetingOverWebSocket(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	names := []string{"tinh", "huyen", "xa"}
	var cs []*client.Client
	for _, n := range names {
		c := ts.join(t, "m1", n, "Site "+n)
		if err := c.Publish(ctx); err != nil {
			t.Fatalf("publish %s: %v", n, err)
		}
		cs = append(cs, c)
	}
	eventually(t, 15*time.Second, func() string {
		for _, rx := range cs {
			if got := len(rx.Participants()); got != len(cs)-1 {
				return fmt.Sprintf("%s sees %d participants, want %d", rx.Self.Name, got, len(cs)-1)
			}
			for _, tx := range cs {
				if rx != tx {
					if why := receivesFrom(rx, tx, 20); why != "" {
						return why
					}
				}
			}
		}
		return ""
	})
	for _, rx := range cs {
		for _, tx := range cs {
			if rx == tx {
				continue
			}
			v := rx.Stream(tx.Self.Streams[protocol.SourceCamera], "video")
			if v.FirstKeyframe.Load() != 1 {
				t.Errorf("%s: first video packet from %s is not a keyframe", rx.Self.Name, tx.Self.Name)
			}
			if !strings.EqualFold(v.MimeType, "video/VP8") {
				t.Errorf("%s: video from %s is %s", rx.Self.Name, tx.Self.Name, v.MimeType)
			}
			p := rx.Participants()[tx.Self.ID]
			if p.Site != tx.Self.Site || p.Name != tx.Self.Name {
				t.Errorf("%s sees %s as %+v", rx.Self.Name, tx.Self.Name, p)
			}
		}
	}

	// A participant who leaves disappears from the others within 2 s.
	cs[2].Leave()
	eventually(t, 2*time.Second, func() string {
		for _, rx := range cs[:2] {
			if _, ok := rx.Participants()[cs[2].Self.ID]; ok {
				return rx.Self.Name + " still lists the leaver"
			}
		}
		return ""
	})
	if got := len(ts.sig.Participants("m1")); got != 2 {
		t.Fatalf("server lists %d participants after a leave, want 2", got)
	}
}

func TestMeetingsAreSeparate(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.join(t, "m1", "a", "A")
	b := ts.join(t, "m2", "b", "B")
	if err := a.Publish(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // give a wrongly routed track time to show up
	if len(b.Participants()) != 0 || b.Stream(a.Self.Streams[protocol.SourceCamera], "video") != nil {
		t.Fatal("a participant of m2 sees m1")
	}
}

// rawConn opens a socket without the client package, to send anything.
func rawConn(t *testing.T, ts *testServer) *websocket.Conn {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(ts.ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func readEnvelope(t *testing.T, conn *websocket.Conn) protocol.Envelope {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, b, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		env, err := protocol.Decode(b)
		if err != nil {
			t.Fatalf("server sent a bad message: %v", err)
		}
		if env.Kind == protocol.KindCandidate || env.Kind == protocol.KindOffer {
			continue
		}
		return env
	}
}

func expectError(t *testing.T, conn *websocket.Conn, code string) {
	t.Helper()
	env := readEnvelope(t, conn)
	if env.Kind != protocol.KindError {
		t.Fatalf("got %s, want error %s", env.Kind, code)
	}
	var e protocol.Error
	if err := protocol.DecodeData(env, &e); err != nil {
		t.Fatal(err)
	}
	if e.Code != code || e.Message == "" {
		t.Fatalf("error %q (%q), want code %q with a message", e.Code, e.Message, code)
	}
}

func expectClose(t *testing.T, conn *websocket.Conn, code int) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != code {
			t.Fatalf("socket ended with %v, want close code %d", err, code)
		}
		return
	}
}

func send(t *testing.T, conn *websocket.Conn, s string) {
	t.Helper()
	if err := conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		t.Fatal(err)
	}
}

// TestBadInput sends every kind of bad message while two participants exchange media:
// each gets a clear error or close code, and the meeting is unaffected.
func TestBadInput(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	a := ts.join(t, "m1", "a", "A")
	b := ts.join(t, "m1", "b", "B")
	for _, c := range []*client.Client{a, b} {
		if err := c.Publish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, func() string { return receivesFrom(a, b, 10) + receivesFrom(b, a, 10) })

	sign := func(keys auth.Keys, ttl time.Duration) string {
		tok, err := keys.Sign(auth.Claims{Use: auth.UseJoin, Meeting: "m1", Role: auth.RoleParticipant}, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	other := auth.Keys{Current: []byte("another-key-0123456789-0123456789-01234")}
	// Each message on a fresh socket: the error it gets and, for a join that fails
	// authentication, the close code (0: the socket stays open).
	for _, c := range []struct {
		name, msg, code string
		close           int
	}{
		{"malformed json", `{"v":1,"type":`, protocol.CodeBadMessage, 0},
		{"not an object", `"hello"`, protocol.CodeBadMessage, 0},
		{"wrong version", `{"v":9,"type":"join","data":{"token":"x"}}`, protocol.CodeUnsupportedVersion, 0},
		{"unknown kind", `{"v":1,"type":"grant_floor","id":"9"}`, protocol.CodeUnknownKind, 0},
		{"offer before join", `{"v":1,"type":"offer","data":{"sdp":"v=0"}}`, protocol.CodeNotJoined, 0},
		{"bad token", `{"v":1,"type":"join","data":{"token":"not.a.jwt"}}`, protocol.CodeUnauthorized,
			protocol.CloseUnauthorized},
		{"token signed with another key", `{"v":1,"type":"join","data":{"token":"` + sign(other, time.Hour) + `"}}`,
			protocol.CodeUnauthorized, protocol.CloseUnauthorized},
		{"expired token", `{"v":1,"type":"join","data":{"token":"` + sign(ts.keys, -time.Minute) + `"}}`,
			protocol.CodeUnauthorized, protocol.CloseUnauthorized},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := rawConn(t, ts)
			send(t, conn, c.msg)
			expectError(t, conn, c.code)
			if c.close != 0 {
				expectClose(t, conn, c.close)
			}
		})
	}
	t.Run("sdp that is not sdp", func(t *testing.T) {
		c := ts.join(t, "m1", "c", "C")
		_, err := c.Request(ctx, protocol.KindOffer, protocol.Offer{SDP: "v=0\r\nthis is not a session description\r\n"})
		if err == nil || !strings.Contains(err.Error(), protocol.CodeBadSDP) {
			t.Fatalf("offer of garbage: %v, want %s", err, protocol.CodeBadSDP)
		}
		_, err = c.Request(ctx, protocol.KindOffer, protocol.Offer{SDP: "hello"})
		if err == nil || !strings.Contains(err.Error(), protocol.CodeBadMessage) {
			t.Fatalf("offer without v=0: %v, want %s", err, protocol.CodeBadMessage)
		}
		// The session survives its mistakes.
		if _, err := c.Request(ctx, protocol.KindPing, nil); err != nil {
			t.Fatalf("ping after bad offers: %v", err)
		}
	})
	t.Run("answer without offer", func(t *testing.T) {
		c := ts.join(t, "m1", "d", "D")
		_, err := c.Request(ctx, protocol.KindAnswer, protocol.Answer{SDP: "v=0\r\n"})
		if err == nil || !strings.Contains(err.Error(), protocol.CodeBadSDP) {
			t.Fatalf("unsolicited answer: %v, want %s", err, protocol.CodeBadSDP)
		}
	})
	t.Run("oversized message", func(t *testing.T) {
		conn := rawConn(t, ts)
		send(t, conn, `{"v":1,"type":"join","data":{"token":"`+strings.Repeat("x", protocol.MaxMessageBytes)+`"}}`)
		expectClose(t, conn, websocket.CloseMessageTooBig)
	})
	t.Run("binary message", func(t *testing.T) {
		conn := rawConn(t, ts)
		if err := conn.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		expectError(t, conn, protocol.CodeBadMessage)
	})

	// The meeting went on: both still receive fresh media from each other.
	keepsReceiving(t, a, b, "audio", 20, 5*time.Second)
	if got := len(ts.sig.Participants("m1")); got != 2 {
		t.Fatalf("meeting has %d participants, want 2 (a, b; the subtests' clients have left)", got)
	}
}

func TestJoinTimeout(t *testing.T) {
	ts := startServer(t, func(c *signaling.Config) { c.JoinTimeout = 300 * time.Millisecond })
	conn := rawConn(t, ts)
	expectClose(t, conn, protocol.CloseJoinTimeout)
}

func TestRateLimit(t *testing.T) {
	ts := startServer(t, func(c *signaling.Config) { c.MessageRate, c.MessageBurst = 1, 5 })
	conn := rawConn(t, ts)
	for i := 0; i < 8; i++ {
		send(t, conn, `{"v":1,"type":"ping"}`)
	}
	limited := false
	for i := 0; i < 8; i++ {
		env := readEnvelope(t, conn)
		if env.Kind == protocol.KindError {
			var e protocol.Error
			_ = protocol.DecodeData(env, &e)
			if e.Code == protocol.CodeRateLimited {
				limited = true
				break
			}
		}
	}
	if !limited {
		t.Fatal("8 pings at a 1/s, burst 5 limit: no rate_limited error")
	}
}

func TestForeignOriginRefused(t *testing.T) {
	ts := startServer(t, nil)
	_, resp, err := websocket.DefaultDialer.Dial(ts.ws, map[string][]string{"Origin": {"http://evil.example"}})
	if err == nil {
		t.Fatal("a page on another origin opened the socket")
	}
	if resp == nil || resp.StatusCode != 403 {
		t.Fatalf("foreign origin: %v, want HTTP 403", err)
	}
	_ = resp.Body.Close()
}
