package udpbatch

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: each shard's flush
// goroutine must stop when the connection closes.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
