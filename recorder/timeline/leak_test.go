package timeline

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: the goroutine following
// the store's changes must stop when the watch ends.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
