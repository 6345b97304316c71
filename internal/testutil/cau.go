package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	cauBinary string
	buildErr  error
)

// BuildCau builds cmd/cau (with the race detector) once per test binary, for tests that
// run real `cau signal` and `cau bridge` processes, and returns its path. The binary
// lives in a directory of its own, left for the system's temporary-file cleaning: the
// processes of several tests use it.
func BuildCau(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
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
