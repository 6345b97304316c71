package redis_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: the store's change
// relay must stop when it closes.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
