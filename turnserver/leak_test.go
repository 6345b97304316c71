package turnserver

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: the TURN server's
// accept loops and sniffers must stop when it closes.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
