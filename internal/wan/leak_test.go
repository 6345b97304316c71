package wan

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: a relay's pumps (the
// public socket's and each inner socket's) must end when the test closes its sockets.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
