package udpbatch

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: each shard's flush
// goroutine must stop when the connection closes.
// Run with receiversEnv set, the binary is BenchmarkFanOut's receiver process instead.
func TestMain(m *testing.M) {
	var n int
	if _, err := fmt.Sscan(os.Getenv(receiversEnv), &n); err == nil && n > 0 {
		receiversChild(n)
	}
	goleak.VerifyTestMain(m)
}
