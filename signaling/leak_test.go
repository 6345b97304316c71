package signaling

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every peer, socket
// and ticker this package starts must stop when its owner closes.
//
// A Redis client closed while Redis was unreachable (the split-brain tests) may leave
// go-redis dialling in the background until its dial timeout: that goroutine is go-redis's
// own, bounded by redisstore's 2 s dial timeout, and ignored here.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).dialConn"))
}
