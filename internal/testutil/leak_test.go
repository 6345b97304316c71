package testutil_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: StartProcess's
// waiter must end with the process.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
