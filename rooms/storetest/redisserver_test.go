package storetest

import (
	"errors"
	"syscall"
	"testing"
)

// gone says whether the process pid has exited (and been waited for). The port is not
// asked: other tests' servers may take it as soon as it is free.
func gone(pid int) bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

// serverPID is the running server's pid.
func serverPID(t *testing.T, r *RedisServer) int {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		t.Fatal("no server running")
	}
	return r.proc.pid()
}

// TestRedisServerLifecycle: a durable server answers; Kill stops it as a crash would and
// Start brings it back on the same port; the end of the test stops it for good.
func TestRedisServerLifecycle(t *testing.T) {
	var last int
	t.Run("run", func(t *testing.T) {
		r := StartDurableRedis(t)
		if err := ping(r.Addr); err != nil {
			t.Fatalf("a started server: %v", err)
		}
		first := serverPID(t, r)
		r.Kill()
		if !gone(first) {
			t.Fatal("a killed server is still running")
		}
		if err := r.Start(); err != nil {
			t.Fatalf("start again: %v", err)
		}
		if err := ping(r.Addr); err != nil {
			t.Fatalf("a restarted server: %v", err)
		}
		last = serverPID(t, r)
	})
	if last != 0 && !gone(last) {
		t.Error("the server still runs after its test ended")
	}
}
