package hopstats

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: the tests' peers and
// their RTCP readers must stop when the test ends.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
