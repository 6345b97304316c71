package storetest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: every redis-server a
// test started must be stopped and waited for when the test ends.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
