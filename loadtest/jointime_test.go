//go:build !race

package loadtest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cau-project/cau/loadtest"
)

// TestJoinTimeBound (issue 12, test strength: nothing guarded join time) is the smoke run
// without the race detector (make test runs it apart): 20 endpoints, 2 publishers, against
// a real server. It logs the p95 of token → first media and of token → every published
// track flowing (video from its first keyframe), writes them to $CAU_ARTIFACTS/join-time.txt,
// and fails when either p95 exceeds joinP95Bound. The bound is loose because the test box
// is shared (at load 21 on 2 cores: 2.4 s and 2.5 s); a regression by design (a join that
// waits for a timeout: ICE gathering, the peer-reflexive delay, a lost first offer) adds
// seconds to every join. A production run is held to `cau loadtest --max-join-p95` (1 s).
func TestJoinTimeBound(t *testing.T) {
	const joinP95Bound = 5 * time.Second
	cfg := loadtest.DefaultConfig()
	cfg.Meeting, cfg.Endpoints, cfg.Publishers, cfg.Duration = "join-time", 20, 2, 3*time.Second
	cfg.VideoKbps, cfg.FPS = 300, 15
	cfg.Thresholds.MaxJoinP95 = joinP95Bound
	rep := run(t, cfg)
	figures := fmt.Sprintf("token → first media p50 %.0f ms, p95 %.0f ms, max %.0f ms; token → all streams (video) p50 %.0f ms, "+
		"p95 %.0f ms; token → joined p95 %.0f ms", rep.Join.P50, rep.Join.P95, rep.Join.Max, rep.JoinAllStreams.P50,
		rep.JoinAllStreams.P95, rep.SignalJoin.P95)
	t.Logf("JOIN TIME (20 endpoints, 2 publishers, no -race): %s", figures)
	if dir := os.Getenv("CAU_ARTIFACTS"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, "join-time.txt"), []byte(figures+"\n"), 0o644)
	}
	if !rep.Pass {
		t.Errorf("run failed its thresholds: %v", rep.Violations)
	}
	if rep.Join.Count != 20 || rep.JoinAllStreams.Count != 20 {
		t.Fatalf("join samples: %d first media, %d all streams; want 20 of each", rep.Join.Count, rep.JoinAllStreams.Count)
	}
	// Where the time went, step by step (issue 11): every endpoint's subscriber connection
	// went through each step, and the log says which step a slow join spent its time in.
	st := rep.JoinSteps
	t.Logf("JOIN STEPS p50/p95 ms: joined→offer %.0f/%.0f, →answer %.0f/%.0f, →ICE %.0f/%.0f, →DTLS %.0f/%.0f, →media %.0f/%.0f",
		st.Offer.P50, st.Offer.P95, st.Answer.P50, st.Answer.P95, st.ICE.P50, st.ICE.P95, st.DTLS.P50, st.DTLS.P95,
		st.Media.P50, st.Media.P95)
	for name, p := range map[string]loadtest.Percentiles{"offer": st.Offer, "answer": st.Answer, "ICE": st.ICE,
		"DTLS": st.DTLS, "media": st.Media} {
		if p.Count != 20 {
			t.Errorf("join step %s timed for %d endpoints, want all 20", name, p.Count)
		}
	}
	if rep.JoinAllStreams.P95 > float64(joinP95Bound/time.Millisecond) {
		t.Errorf("token → all streams p95 %.0f ms, want ≤ %v", rep.JoinAllStreams.P95, joinP95Bound)
	}
}
