package app_test

import (
	"context"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/bridge"
	"github.com/cau-project/cau/bridge/control"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/testkit"
	"github.com/cau-project/cau/sfu"
)

// TestTreeEditReachesPlacementAndConsole (issue 12, finding 8): a site added through the
// REST API used to reach neither signaling nor the console until a restart: a bridge for
// it was refused as an unknown site, its endpoints were placed as if it did not exist, and
// the console's site list did not show it. Now all three follow the edit at once.
func TestTreeEditReachesPlacementAndConsole(t *testing.T) {
	ctx := t.Context()
	store, tree := testkit.Store(t, testkit.SiteTW, testkit.SiteXA)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	a, err := app.Start(ctx, app.Config{HTTPAddr: "127.0.0.1:0", ICETCPPort: -1, Dev: true, Logger: log,
		Store: store, Tree: tree, Site: "tw", Ancestry: tree.Ancestors})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()

	apiCall(t, a, "POST", "/sites", map[string]any{"id": "xb", "name": "Xã Ia Pếch", "level": "commune", "parent": "tw"}, nil)

	// The console's site list.
	var consoleTree struct {
		Sites [][4]string `json:"sites"`
	}
	apiCall(t, a, "GET", "/monitor/tree", nil, &consoleTree)
	if !slices.ContainsFunc(consoleTree.Sites, func(s [4]string) bool { return s[0] == "xb" && s[1] == "Xã Ia Pếch" }) {
		t.Fatalf("the console's tree after adding xb: %v", consoleTree.Sites)
	}

	// A bridge for the new site is admitted.
	reg := prometheus.NewRegistry()
	metrics, err := sfu.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	engine, err := sfu.New(sfu.Config{ICEUDPPort: 0, ICETCPPort: -1, IncludeLoopback: true, Logger: log, Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a.Keys().Sign(control.BridgeClaims("xb", "br-xb"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = bridge.Run(bctx, bridge.ClientConfig{SignalURL: "ws" + strings.TrimPrefix(a.URL(), "http") + "/bridge",
			Token: tok, ID: "br-xb", Site: "xb", Bridge: engine, Logger: log})
	}()
	defer func() { cancel(); <-done; _ = engine.Close() }()
	waitUntil(t, "the new site's bridge registers", 15*time.Second, func() string {
		if a.Signaling().Bridges()["br-xb"] != "xb" {
			return "bridges " + strings.Join(slices.Sorted(maps.Keys(a.Signaling().Bridges())), ",")
		}
		return ""
	})

	// An endpoint of the new site is placed on its bridge.
	jt, err := a.Keys().Sign(auth.Claims{Use: auth.UseJoin, Meeting: "adhoc-tree", Site: "xb", Name: "Xã Ia Pếch",
		Role: auth.RoleParticipant}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, "ws"+strings.TrimPrefix(a.URL(), "http")+"/ws", jt, client.Options{Loopback: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitUntil(t, "the endpoint's peer on the new site's bridge", 10*time.Second, func() string {
		var m dto.Metric
		if err := metrics.Peers.Write(&m); err != nil {
			return err.Error()
		}
		if m.GetGauge().GetValue() < 1 {
			return "no peer on br-xb"
		}
		return ""
	})
}
