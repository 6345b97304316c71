package loadtest_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: every bot's client,
// watcher and the progress loop must stop when a run ends.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
