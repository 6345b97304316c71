package signaling_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/protocol"
)

// buildCau builds cmd/cau once per test run, for tests that need real processes.
func buildCau(t testing.TB) string { return testutil.BuildCau(t) }

// startBridgeProcess runs `cau bridge` for site and returns the process.
func (c *cascade) startBridgeProcess(t testing.TB, id, site string) *exec.Cmd {
	t.Helper()
	return startProcess(t, []string{"CAU_TOKEN_KEY=" + string(c.keys.Current)}, "bridge", "--site", site, "--id", id,
		"--signal", c.url, "--udp-port", "0", "--tcp-port", "-1", "--dev", "--log-level", "error")
}

// TestBridgeProcessKilled kills a district bridge process mid-meeting: its endpoint is
// placed on the nearest ancestor's bridge (the province's) and receives media again.
func TestBridgeProcessKilled(t *testing.T) {
	testBridgeProcessLost(t, "killed", "failover.txt", func(p *os.Process) error { return p.Signal(syscall.SIGKILL) })
}

// TestBridgeProcessHung stops a district bridge process mid-meeting (SIGSTOP: its
// sockets stay open, its heartbeats stop; issue 12, test strength): signaling declares it
// down when its heartbeats are overdue, and its endpoint moves to the province's bridge
// and receives again, starting on a keyframe.
func TestBridgeProcessHung(t *testing.T) {
	testBridgeProcessLost(t, "hung", "failover-hung.txt", func(p *os.Process) error {
		t.Cleanup(func() { _ = p.Signal(syscall.SIGCONT) })
		return p.Signal(syscall.SIGSTOP)
	})
}

// testBridgeProcessLost runs a meeting across the central, province and district
// bridges, loses the district's bridge process with lose, and checks its endpoint moves
// to the province's bridge and receives again from a keyframe. The time from the loss to
// media flowing again is logged, and written to artifact in $CAU_ARTIFACTS.
func testBridgeProcessLost(t *testing.T, how, artifact string, lose func(*os.Process) error) {
	c := startCascade(t)
	c.startBridgeProcess(t, "br-prov", "prov")
	dist := c.startBridgeProcess(t, "br-dist", "dist")
	eventually(t, 20*time.Second, func() string {
		if n := len(c.sig.Bridges()); n != 3 {
			return fmt.Sprintf("%d bridges registered, want 3", n)
		}
		return ""
	})
	chair := c.publisher(t, "m1", "central", "chair")
	official := c.join(t, "m1", "dist", "district official")
	eventually(t, 20*time.Second, func() string { return receivesFrom(official, chair, 30) })
	if got := c.sig.Placement("m1")[official.Self.ID]; got != "br-dist" {
		t.Fatalf("the district official is on %q, want br-dist", got)
	}

	lost := time.Now()
	if err := lose(dist.Process); err != nil {
		t.Fatal(err)
	}
	detected := make(chan time.Duration, 1)
	go func() { // when signaling declares the bridge down, to 10 ms
		for len(c.sig.Bridges()) == 3 && time.Since(lost) < 20*time.Second {
			time.Sleep(10 * time.Millisecond)
		}
		detected <- time.Since(lost)
	}()
	var moved time.Duration
	eventually(t, 20*time.Second, func() string {
		if official.Reconnects() < 1 {
			return "the official was not asked to reconnect"
		}
		if why := receivesFrom(official, chair, 10); why != "" {
			return why
		}
		if moved == 0 {
			moved = time.Since(lost)
		}
		return ""
	})
	if got := c.sig.Placement("m1")[official.Self.ID]; got != "br-prov" {
		t.Fatalf("after the bridge was %s the official is on %q, want br-prov (nearest ancestor)", how, got)
	}
	v := official.Stream(chair.Self.Streams[protocol.SourceCamera], "video")
	if v.FirstKeyframe.Load() != 1 {
		t.Error("after moving, the first video packet is not a keyframe")
	}
	down := <-detected
	t.Logf("FAILOVER: bridge process %s: declared down after %v, media flowing again after %v",
		how, down.Round(time.Millisecond), moved.Round(time.Millisecond))
	if dir := os.Getenv("CAU_ARTIFACTS"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, artifact), []byte(fmt.Sprintf("down %v\nmedia %v\n", down, moved)), 0o644)
	}
}
