package whip_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: every resource's
// endpoint, connection and forwarding loop must stop when it is deleted or the server
// closes.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
