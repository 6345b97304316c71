// Package testbrowser is the one harness the browser tests share: finding Chromium (skip
// without it, but fail under CI=true, where the browser tests must run), starting it
// headless with a fresh profile (fake camera and microphone, a language, a window size),
// driving a tab (Open, Click, WaitFor, Eval, Await, Screenshot), and the artifact
// directory and log (KeepLog) a failed test leaves behind.
package testbrowser

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cau-project/cau/internal/testutil"
)

// ChromiumPath finds the browser, or skips the test (fails it under CI=true) when there
// is none.
func ChromiumPath(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	testutil.Missing(t, "chromium", "chromium")
	return ""
}

// Require skips a browser test in -short mode, and otherwise returns Chromium's path
// (ChromiumPath: skipped, or failed under CI=true, without it).
func Require(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test skipped in -short mode (testing.Short)")
	}
	return ChromiumPath(t)
}

// ArtifactDir is where a test's screenshots and logs go: $CAU_ARTIFACTS/<test> if set,
// else a temporary directory.
func ArtifactDir(t testing.TB) string {
	t.Helper()
	base := os.Getenv("CAU_ARTIFACTS")
	if base == "" {
		return t.TempDir()
	}
	dir := filepath.Join(base, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifact dir: %v", err)
	}
	return dir
}
