package testkit_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: a severed CutProxy
// must have stopped its accept loop and both copy goroutines of every connection.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
