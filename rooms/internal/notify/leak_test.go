package notify_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: every watcher's
// goroutine must stop when it is cancelled.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
