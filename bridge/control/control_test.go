package control

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/bridge"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
)

// TestRegistration drives /bridge over a real socket: a bridge token and a valid id are
// needed, a taken id is refused, and a bridge that goes is reported down once.
func TestRegistration(t *testing.T) {
	keys := auth.Keys{Current: []byte("test-key-0123456789-0123456789-0123456789")}
	var mu sync.Mutex
	live := map[ids.BridgeID]bool{}
	down := make(chan ids.BridgeID, 4)
	srv := New(Config{Keys: keys, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registered: func(b *Remote) (bridge.Events, error) {
			mu.Lock()
			defer mu.Unlock()
			if live[b.ID()] {
				return bridge.Events{}, errors.New("taken")
			}
			live[b.ID()] = true
			return bridge.Events{}, nil
		},
		Down: func(b *Remote, why string) {
			mu.Lock()
			delete(live, b.ID())
			mu.Unlock()
			down <- b.ID()
		},
	})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	token := func(role auth.Role) string {
		use := auth.UseAPI
		if role == auth.RoleBridge {
			use = auth.UseBridge
		}
		tok, err := keys.Sign(auth.Claims{Use: use, Role: role, Site: "d1"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// register dials, registers as id and returns the socket and the reply's kind and code.
	register := func(role auth.Role, id string) (*websocket.Conn, protocol.Kind, string) {
		t.Helper()
		ws, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + token(role)}})
		if err != nil {
			if resp != nil && resp.StatusCode == http.StatusUnauthorized {
				return nil, "", "unauthorized"
			}
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		b, _ := protocol.Encode(protocol.KindBridgeRegister, "r1", map[string]string{"id": id, "site": "d1"})
		if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, data, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("register %s: %v", id, err)
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

	if _, _, code := register(auth.RoleChair, "br-1"); code != "unauthorized" {
		t.Errorf("a chair's token registered a bridge (%s)", code)
	}
	for _, bad := range []string{"", "a~b", "with space", string(ids.LocalBridge)} {
		if _, kind, code := register(auth.RoleBridge, bad); kind != protocol.KindError || code != protocol.CodeBadMessage {
			t.Errorf("id %q: %s %s, want error %s", bad, kind, code, protocol.CodeBadMessage)
		}
	}
	ws, kind, _ := register(auth.RoleBridge, "br-1")
	if kind != protocol.KindBridgeRegistered {
		t.Fatalf("br-1: %s, want registered", kind)
	}
	if _, kind, code := register(auth.RoleBridge, "br-1"); kind != protocol.KindError || code != protocol.CodeForbidden {
		t.Errorf("second br-1: %s %s, want error %s", kind, code, protocol.CodeForbidden)
	}
	_ = ws.Close()
	select {
	case id := <-down:
		if id != "br-1" {
			t.Fatalf("down: %s", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a bridge whose socket closed was not reported down")
	}
	select {
	case id := <-down:
		t.Fatalf("%s reported down twice", id)
	case <-time.After(100 * time.Millisecond):
	}
}
