package loadtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/testkit"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/loadtest"
	"github.com/cau-project/cau/sfu/speaker"
)

func logger() *slog.Logger { return testutil.Logger() }

// startServer runs a dev-mode Cầu in this process on free ports, with a store so that
// its API mints the join tokens (dev mode opens ad hoc meetings).
func startServer(t *testing.T) *app.App { return startServerWith(t, speaker.Params{}) }

// startServerWith is startServer with the bridge's Last-N tuned (zero fields: defaults).
func startServerWith(t *testing.T, lastN speaker.Params) *app.App {
	t.Helper()
	store, _ := testkit.Store(t)
	a, err := app.Start(context.Background(), app.Config{HTTPAddr: "127.0.0.1:0", ICEUDPPort: 0, ICETCPPort: -1,
		Dev: true, Logger: logger(), Store: store, Speaker: lastN})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// operatorToken is what an operator passes to cau loadtest (--token).
func operatorToken(t *testing.T, a *app.App, role auth.Role) string {
	t.Helper()
	tok, err := a.Keys().Sign(auth.Claims{Use: auth.UseAPI, Role: role, Name: "load tester"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// run runs cfg against a fresh server and returns the report as read back from its JSON.
func run(t *testing.T, cfg loadtest.Config) *loadtest.Report {
	t.Helper()
	return runOn(t, startServer(t), cfg)
}

// runOn is run against the server a.
func runOn(t *testing.T, a *app.App, cfg loadtest.Config) *loadtest.Report {
	t.Helper()
	cfg.URL, cfg.Token, cfg.Logger = a.URL(), operatorToken(t, a, auth.RoleAdmin), logger()
	var progress bytes.Buffer
	cfg.Progress, cfg.ProgressEvery = &progress, 2*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := loadtest.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	t.Logf("progress:\n%s\nreport:\n%s", progress.String(), text.String())
	if !strings.Contains(progress.String(), "joined") {
		t.Errorf("no progress lines written")
	}

	path := filepath.Join(t.TempDir(), "report.json")
	if err := rep.WriteJSON(path, nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var back loadtest.Report
	if err := dec.Decode(&back); err != nil {
		t.Fatalf("report JSON does not read back: %v\n%s", err, b)
	}
	var generic map[string]any
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"join_ms", "loss_pct", "jitter_ms", "latency_ms", "packets", "frames", "server", "pass"} {
		if _, ok := generic[k]; !ok {
			t.Errorf("report has no %q", k)
		}
	}
	return &back
}

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol*want }

// TestSmoke is the CI run: 20 endpoints for 10 s, 2 publishers, against a real server.
func TestSmoke(t *testing.T) {
	cfg := loadtest.DefaultConfig()
	cfg.Meeting, cfg.Endpoints, cfg.Publishers, cfg.Duration = "smoke", 20, 2, 10*time.Second
	cfg.VideoKbps, cfg.FPS = 300, 15 // light: the race detector and a shared 2-core box
	cfg.Thresholds.MaxJoinP95 = 5 * time.Second
	rep := run(t, cfg)

	if !rep.Pass {
		t.Errorf("run failed its thresholds: %v", rep.Violations)
	}
	e := rep.Endpoints
	if e.Requested != 20 || e.Joined != 20 || e.WithMedia != 20 || e.Failed != 0 || e.Dropped != 0 {
		t.Errorf("endpoints %+v: want all 20 joined with media", e)
	}
	if rep.Loss.Overall >= 1 || rep.Loss.Worst >= 5 {
		t.Errorf("loss %+v: want overall < 1%%", rep.Loss)
	}
	if !near(rep.WindowSeconds, 10, 0.1) {
		t.Errorf("window %.2f s, want 10", rep.WindowSeconds)
	}
	// 2 publishers × (50 audio packets + 15 frames × packets per frame) per second.
	perSec := 2 * (50 + 15*float64(rep.Config.PacketsPerFrame))
	if !near(float64(rep.Packets.Sent), perSec*rep.WindowSeconds, 0.1) {
		t.Errorf("sent %d packets in %.1f s, want about %.0f", rep.Packets.Sent, rep.WindowSeconds, perSec*rep.WindowSeconds)
	}
	if rep.Packets.Expected != rep.Packets.Sent*19 {
		t.Errorf("expected %d packets, want sent × 19 = %d", rep.Packets.Expected, rep.Packets.Sent*19)
	}
	if rep.Packets.Ratio < 0.97 || rep.Packets.Ratio > 1.01 {
		t.Errorf("received/expected packets %.4f, want 0.97–1.01 (%+v)", rep.Packets.Ratio, rep.Packets)
	}
	if rep.Frames.Sent == 0 || rep.Frames.Ratio < 0.95 || rep.Frames.Ratio > 1.01 {
		t.Errorf("frames %+v: want 0.95–1.01 of expected complete", rep.Frames)
	}
	// 18 listeners get 2 × (audio + video); each publisher gets the other's 2.
	if rep.Streams.Total != 18*4+2*2 || rep.Streams.PerSubscriberMax != 4 || rep.Streams.PerSubscriberMin != 2 {
		t.Errorf("streams %+v: want 76, 2–4 per endpoint", rep.Streams)
	}
	// The median says the media is forwarded live (3–4 ms here); the tail is the race
	// detector's: under -race the tester and the server each take ~85% of a core of the
	// two, and on a quiet 2-core box p95 read 680–830 ms and p99 1.2–1.5 s at every commit
	// tried (stop 22's main included). Latency targets are the benchmarks' (make
	// bench-load, docs/benchmarks.md), not this test's.
	if l := rep.Latency; l.P50 <= 0 || l.P50 >= 250 || l.P50 > l.P95 || l.P95 > l.P99 || l.P99 > l.Max+0.5 ||
		l.Count < rep.Packets.Received*9/10 {
		t.Errorf("latency %+v: want 0 < p50 < 250 ms, p50 ≤ p95 ≤ p99 ≤ max, over most packets", l)
	}
	if j := rep.Join; j.Count != 20 || j.P95 <= 0 || j.P50 > j.P95 || j.Max > 10000 {
		t.Errorf("join %+v: want 20 samples, 0 < p50 ≤ p95", j)
	}
	if rep.SignalJoin.P95 <= 0 || rep.SignalJoin.P95 > rep.Join.Max+1 {
		t.Errorf("signal join %+v vs media join %+v", rep.SignalJoin, rep.Join)
	}
	if j := rep.Jitter; j.Mean <= 0 || j.Worst < j.Mean || j.Worst > 100 {
		t.Errorf("jitter %+v: want 0 < mean ≤ worst < 100 ms", j)
	}
	s := rep.Server
	if s.Error != "" {
		t.Fatalf("server metrics: %s", s.Error)
	}
	// The server forwards what the endpoints receive. Its counter is updated every 64
	// packets of each published track, so at this low rate it lags by up to 64 × 19
	// packets per track at each end of the window.
	if !near(s.ForwardedPackets, float64(rep.Packets.Received), 0.15) {
		t.Errorf("server forwarded %.0f packets, endpoints received %d", s.ForwardedPackets, rep.Packets.Received)
	}
	if s.CPUMicrosPerPacket <= 0 || s.CPUSeconds <= 0 || s.RSSEndBytes <= 0 {
		t.Errorf("server costs %+v: want positive CPU and memory", s)
	}
}

// TestRotate moves the floor round the sites every 2 s: publisher churn with more
// endpoints. It is the heavier variant, skipped with -short.
func TestRotate(t *testing.T) {
	if testing.Short() {
		t.Skip("heavier load test; run without -short (testing.Short)")
	}
	cfg := loadtest.DefaultConfig()
	cfg.Meeting, cfg.Endpoints, cfg.Publishers, cfg.Duration = "rotate", 24, 3, 9*time.Second
	cfg.Mode, cfg.RotateEvery, cfg.Ramp = loadtest.ModeRotate, 2*time.Second, 30
	cfg.VideoKbps, cfg.FPS = 300, 15
	cfg.Thresholds.MaxJoinP95 = 5 * time.Second
	rep := run(t, cfg)

	if !rep.Pass || rep.Endpoints.Failed != 0 || rep.Endpoints.Dropped != 0 || rep.Errors != 0 {
		t.Errorf("pass %v, violations %v, endpoints %+v, errors %d", rep.Pass, rep.Violations, rep.Endpoints, rep.Errors)
	}
	if rep.Rotations < 3 {
		t.Errorf("%d rotations in %.0f s, want ≥ 3", rep.Rotations, rep.WindowSeconds)
	}
	if rep.Loss.Overall >= 1 {
		t.Errorf("loss %.3f%%", rep.Loss.Overall)
	}
	// Every rotation adds a new speaker's streams to every endpoint.
	if rep.Streams.Total <= 23*4 {
		t.Errorf("%d streams: the floor did not move", rep.Streams.Total)
	}
	// A new speaker reaches the others only after their subscriber connections are
	// renegotiated and a keyframe arrives, so less than all it sends is received; but
	// nothing may be received that was not sent.
	if rep.Packets.Ratio < 0.5 || rep.Packets.Ratio > 1.01 {
		t.Errorf("received/expected packets %.3f (%+v)", rep.Packets.Ratio, rep.Packets)
	}
}

// TestJoinTokensNeedAnOperator: the tester gets its join tokens from the API, so a token
// that may not mint them (a technician's) fails every join with the API's refusal, and the
// run reports it instead of hanging.
func TestJoinTokensNeedAnOperator(t *testing.T) {
	a := startServer(t)
	cfg := loadtest.DefaultConfig()
	cfg.URL, cfg.Token, cfg.Logger = a.URL(), operatorToken(t, a, auth.RoleTechnician), logger()
	cfg.Meeting, cfg.Endpoints, cfg.Publishers, cfg.Duration = "refused", 2, 1, time.Second
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := loadtest.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if rep.Pass || rep.Endpoints.Failed != 2 || rep.Endpoints.Joined != 0 {
		t.Errorf("pass %v, endpoints %+v: want both joins failed", rep.Pass, rep.Endpoints)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	if !strings.Contains(text.String(), "forbidden") {
		t.Errorf("the report does not say the API refused the token:\n%s", text.String())
	}
}

// TestSimulcastLayers: publishers send three layers (--simulcast); every subscriber on
// loopback receives each publisher's video once, at one layer at a time, every frame of
// it, and the report counts the layers the packets came at.
func TestSimulcastLayers(t *testing.T) {
	cfg := loadtest.DefaultConfig()
	cfg.Meeting, cfg.Endpoints, cfg.Publishers, cfg.Duration = "simulcast", 6, 2, 10*time.Second
	cfg.VideoKbps, cfg.FPS, cfg.Simulcast = 600, 15, true
	cfg.Thresholds.MaxJoinP95 = 0 // what is checked here is delivery and layers, not join time on a loaded box
	rep := run(t, cfg)
	if !rep.Pass {
		t.Errorf("run failed its thresholds: %v", rep.Violations)
	}
	l := rep.Layers
	if l == nil {
		t.Fatal("no layer figures in a simulcast run")
	}
	var video int64
	for _, n := range l.Packets {
		video += n
	}
	// Each of the 5 other endpoints receives each of the 2 publishers' video (the
	// publishers 1 other each): 2×5 streams, each at one layer.
	if got := l.Streams[0] + l.Streams[1] + l.Streams[2]; got != 2*5 {
		t.Errorf("%d video streams counted by layer, want 10 (%+v)", got, l)
	}
	if video == 0 {
		t.Fatalf("no video packet carried a layer: %+v", l)
	}
	if rep.Frames.Ratio < 0.9 {
		t.Errorf("received %.3f of the frames: a subscriber must get every frame at some layer (%+v)", rep.Frames.Ratio, rep.Frames)
	}
	t.Logf("layers: %+v", *l)
}
