package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// Tool finds the first of names on PATH. When none is installed it skips the test, or
// fails it under CI=true (CI installs everything the tests use: .ci/run), naming the
// Debian package that brings it.
func Tool(t testing.TB, pkg string, names ...string) string {
	t.Helper()
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	Missing(t, names[0], pkg)
	return ""
}

// Missing skips the test because what is not installed, or fails it under CI=true;
// pkg is what to install (apt-get install pkg).
func Missing(t testing.TB, what, pkg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed, and CI=true forbids skipping (apt-get install %s)", what, pkg)
	}
	t.Skipf("%s not found: not installed (apt-get install %s)", what, pkg)
}
