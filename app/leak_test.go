package app_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: a closed App must
// have stopped its servers, bridge, monitor, recordings and SIP gateway, and the tests'
// clients and browsers must be gone.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
