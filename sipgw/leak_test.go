package sipgw_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: every call's
// endpoint, connections, sockets and forwarding loops must stop when it ends or the
// gateway closes.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
