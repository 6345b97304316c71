package profiling

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: the profiling
// server must stop when its context ends.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
