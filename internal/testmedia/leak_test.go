package testmedia_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: a publisher's two
// senders and its keyframe-request readers must end with Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
