package recorder

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: every source's writer
// must stop when the recording stops.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
