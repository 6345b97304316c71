package presence_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: the refresh ticker
// and every meeting's subscription must stop when their context ends.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
