package signaling

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every peer, socket
// and ticker this package starts must stop when its owner closes.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
