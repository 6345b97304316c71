package api_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: the API's servers and
// the stores' watchers must stop when a test ends.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
