// Package testapp starts Cầu in-process for the tests of the packages around it (the SIP
// gateway, WHIP, the CLI, the app's own tests): one place that knows how a test runs the
// server, closes it, and shows its log when the test fails.
package testapp

import (
	"log/slog"
	"testing"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/internal/testutil"
)

// Start runs Cầu with cfg until the test ends. An empty HTTPAddr becomes a free loopback
// port. With no Logger, the server logs at info into the buffer returned, whose last
// 64 KiB the test's log shows if the test fails; with one, the buffer stays empty and
// the caller's logger decides.
func Start(t testing.TB, cfg app.Config) (*app.App, *testutil.LockedBuffer) {
	t.Helper()
	logs := &testutil.LockedBuffer{}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("server log:\n%s", logs.Tail(64<<10))
			}
		})
	}
	a, err := app.Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("start cau: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Logf("close cau: %v", err)
		}
	})
	return a, logs
}
