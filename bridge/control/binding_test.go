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
	"github.com/cau-project/cau/bridge"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
)

// TestRegistrationBoundToCredential: a bridge registers only as the site (and id) its
// token names, for a site the tree knows, with a token made for bridges; a commune bridge's token cannot register as the central site.
func TestRegistrationBoundToCredential(t *testing.T) {
	keys := auth.Keys{Current: []byte("test-key-0123456789-0123456789-0123456789")}
	known := map[ids.SiteID]bool{"central": true, "comm": true}
	srv := New(Config{Keys: keys, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		KnownSite:  func(s ids.SiteID) bool { return known[s] },
		Registered: func(b *Remote) (bridge.Events, error) { return bridge.Events{}, nil },
	})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	register := func(c auth.Claims, id, site string) string {
		t.Helper()
		tok, err := keys.Sign(c, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		ws, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + tok}})
		if err != nil {
			if resp != nil && resp.StatusCode == http.StatusUnauthorized {
				return "unauthorized"
			}
			t.Fatal(err)
		}
		defer ws.Close()
		_ = resp.Body.Close()
		b, _ := protocol.Encode(protocol.KindBridgeRegister, "r1", map[string]string{"id": id, "site": site})
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
		if env.Kind == protocol.KindError {
			var e protocol.Error
			_ = protocol.DecodeData(env, &e)
			return e.Code
		}
		return string(env.Kind)
	}
	commune := BridgeClaims("comm", "br-comm")
	if got := register(commune, "br-comm", "central"); got != protocol.CodeForbidden {
		t.Errorf("a commune's bridge token registered as central: %s", got)
	}
	if got := register(commune, "br-central", "comm"); got != protocol.CodeForbidden {
		t.Errorf("a bridge token for br-comm registered as br-central: %s", got)
	}
	if got := register(BridgeClaims("nowhere", "br-x"), "br-x", "nowhere"); got != protocol.CodeForbidden {
		t.Errorf("a bridge for a site the tree does not know registered: %s", got)
	}
	if got := register(BridgeClaims("", "br-comm"), "br-comm", "comm"); got != "unauthorized" {
		t.Errorf("a bridge token naming no site registered: %s", got)
	}
	if got := register(commune, "br-comm", "comm"); got != string(protocol.KindBridgeRegistered) {
		t.Errorf("the commune's own bridge: %s, want registered", got)
	}
}
