package udpbatch

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: a Conn starts none,
// and a writer waiting for a free batch must return once the connection closes.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
