package testapp_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: the app Start runs
// must be closed, with everything it started, when the test ends.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
