package app_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/testapp"
	"github.com/cau-project/cau/internal/testmedia"
	"github.com/cau-project/cau/internal/testutil"
)

// TestGoClientUsesTURN: the Go client takes the TURN servers from joined; made to use
// relayed candidates only, it still publishes and receives, through the embedded TURN.
func TestGoClientUsesTURN(t *testing.T) {
	a, logs := testapp.Start(t, app.Config{ICEUDPPort: 0, ICETCPPort: -1, Dev: true})
	// The clients log beside the server, so a failure's log tells the whole story.
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if udp, tcp := a.TURNAddrs(); udp == "" || tcp == "" {
		t.Fatalf("dev mode runs no TURN server (udp %q, tcp %q)", udp, tcp)
	}
	ws := strings.Replace(a.URL(), "http://", "ws://", 1) + "/ws"
	dial := func(site string, relay bool) *client.Client {
		tok, err := a.Keys().Sign(auth.Claims{Use: auth.UseJoin, Meeting: "turn", Site: site, Name: site, Role: auth.RoleParticipant}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return testmedia.DialPublishing(t, ws, tok, client.Options{Loopback: true, RelayOnly: relay, Logger: log})
	}
	relayed := dial("hcm", true)
	direct := dial("ha-noi", false)
	testutil.Eventually(t, 30*time.Second, func() string {
		for _, p := range []struct {
			rx   *client.Client
			from string
		}{{relayed, direct.Self.ID}, {direct, relayed.Self.ID}} {
			for _, kind := range []string{"audio", "video"} {
				s := p.rx.Stream(p.from+".camera", kind)
				if s == nil || s.Packets.Load() < 50 {
					return p.rx.Self.Name + " has not received 50 " + kind + " packets from " + p.from
				}
			}
		}
		return ""
	})
	// A relay-only client has no candidate but its TURN allocation's: media that flows
	// both ways went through the embedded TURN server.
}
