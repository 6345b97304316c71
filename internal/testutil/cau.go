package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	cauBinary string
	buildErr  error
)

// BuildCau builds cmd/cau (with the race detector) once per test binary, for tests that
// run real `cau signal` and `cau bridge` processes, and returns its path. The binary
// lives in a directory of its own, left for the system's temporary-file cleaning: the
// processes of several tests use it. make test links it once beforehand, for every
// package, and names it in $CAU_TEST_RACE_CAU: that binary is used instead.
func BuildCau(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("CAU_TEST_RACE_CAU"); p != "" {
			if _, err := os.Stat(p); err != nil {
				buildErr = fmt.Errorf("CAU_TEST_RACE_CAU: %w", err)
			}
			cauBinary = p
			return
		}
		dir, err := os.MkdirTemp("", "cau-bin")
		if err != nil {
			buildErr = err
			return
		}
		cauBinary = filepath.Join(dir, "cau")
		out, err := exec.Command("go", "build", "-race", "-o", cauBinary, "github.com/cau-project/cau/cmd/cau").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return cauBinary
}

// StartProcess starts cmd, killed with the test process if that dies (Pdeathsig), and
// stops it when the test ends: SIGTERM, then SIGKILL after grace.
func StartProcess(t testing.TB, cmd *exec.Cmd, grace time.Duration) error {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(grace):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return nil
}
