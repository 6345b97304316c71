package bolt_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: a store's watchers
// must stop when it closes.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
