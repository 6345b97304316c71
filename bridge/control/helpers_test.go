package control

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/protocol"
)

// testKeys sign the tests' tokens and verify them at the control server.
var testKeys = auth.Keys{Current: []byte("test-key-0123456789-0123456789-0123456789")}

// serve runs a control server for cfg (the tests' keys, a silent logger) until the test
// ends and returns its WebSocket URL.
func serve(t *testing.T, cfg Config) string {
	t.Helper()
	cfg.Keys, cfg.Logger = testKeys, slog.New(slog.NewTextHandler(io.Discard, nil))
	hs := httptest.NewServer(New(cfg))
	t.Cleanup(hs.Close)
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

// sign makes a token for c.
func sign(t *testing.T, c auth.Claims) string {
	t.Helper()
	tok, err := testKeys.Sign(c, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// dialRegister dials url with tok, registers as bridge id at site and returns the socket
// and the reply's kind and, for an error, its code. A handshake refused with 401 returns
// no socket and the code "unauthorized".
func dialRegister(t *testing.T, url, tok, id, site string) (*websocket.Conn, protocol.Kind, string) {
	t.Helper()
	return dialRegisterMsg(t, url, tok, map[string]string{"id": id, "site": site})
}

// dialRegisterMsg is dialRegister with the register message's data given whole.
func dialRegisterMsg(t *testing.T, url, tok string, reg any) (*websocket.Conn, protocol.Kind, string) {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			return nil, "", "unauthorized"
		}
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	b, _ := protocol.Encode(protocol.KindBridgeRegister, "r1", reg)
	if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("register %v: %v", reg, err)
	}
	env, err := protocol.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	var e protocol.Error
	if env.Kind == protocol.KindError {
		_ = protocol.DecodeData(env, &e)
	}
	if env.ID != "r1" {
		t.Errorf("reply to register has id %q, want r1", env.ID)
	}
	return ws, env.Kind, e.Code
}
