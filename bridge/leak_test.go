package bridge

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: every peer, socket and
// control-socket loop the agent starts must stop when it closes.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
