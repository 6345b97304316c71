package control

import (
	"errors"
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
	var mu sync.Mutex
	live := map[ids.BridgeID]bool{}
	down := make(chan ids.BridgeID, 4)
	url := serve(t, Config{
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
	// register registers as id at d1 with a token for role.
	register := func(role auth.Role, id string) (*websocket.Conn, protocol.Kind, string) {
		t.Helper()
		use := auth.UseAPI
		if role == auth.RoleBridge {
			use = auth.UseBridge
		}
		return dialRegister(t, url, sign(t, auth.Claims{Use: use, Role: role, Site: "d1"}), id, "d1")
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
