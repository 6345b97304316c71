package control

import (
	"testing"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/bridge"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
)

// TestRegistrationBoundToCredential: a bridge registers only as the site (and id) its
// token names, for a site the tree knows, with a token made for bridges; a commune bridge's token cannot register as the central site.
func TestRegistrationBoundToCredential(t *testing.T) {
	known := map[ids.SiteID]bool{"central": true, "comm": true}
	url := serve(t, Config{
		KnownSite:  func(s ids.SiteID) bool { return known[s] },
		Registered: func(b *Remote) (bridge.Events, error) { return bridge.Events{}, nil },
	})
	// register answers the reply's kind, or the error's code.
	register := func(c auth.Claims, id, site string) string {
		t.Helper()
		ws, kind, code := dialRegister(t, url, sign(t, c), id, site)
		if ws == nil {
			return code
		}
		_ = ws.Close()
		if kind == protocol.KindError {
			return code
		}
		return string(kind)
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
