package testpeer_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: two closed peers
// built by API must leave nothing running (ICE agents, DTLS/SCTP, interceptors' tickers).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
