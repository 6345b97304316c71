package service

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: recordings, their
// composition and the retention loop must stop with the service.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
