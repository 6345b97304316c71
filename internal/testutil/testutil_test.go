package testutil_test

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/testutil"
)

// TestStartProcessStopsAtTheEnd: a process that ignores SIGTERM is killed after the
// grace period when its test ends, and one that obeys stops at once.
func TestStartProcessStopsAtTheEnd(t *testing.T) {
	for _, c := range []struct {
		name   string
		script string
	}{
		{"obeys SIGTERM", "sleep 60"},
		{"ignores SIGTERM", "trap '' TERM; while :; do sleep 0.1; done"},
	} {
		var cmd *exec.Cmd
		t.Run(c.name, func(t *testing.T) {
			cmd = exec.Command("sh", "-c", c.script)
			if err := testutil.StartProcess(t, cmd, 200*time.Millisecond); err != nil {
				t.Fatal(err)
			}
		})
		if cmd.ProcessState == nil {
			t.Errorf("%s: the process was not waited for at the end of its test", c.name)
		} else if err := syscall.Kill(cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s: the process still runs after its test: %v", c.name, err)
		}
	}
}

// TestEventually: the condition is polled until it holds, and not after.
func TestEventually(t *testing.T) {
	n := 0
	testutil.Eventually(t, 10*time.Second, func() string {
		if n++; n < 3 {
			return "not yet"
		}
		return ""
	})
	if n != 3 {
		t.Errorf("condition asked %d times, want 3", n)
	}
}

// TestFreePort: the port FreePort gives can be taken for UDP and for TCP on 127.0.0.1,
// and two calls in a row give two ports while the first is held.
func TestFreePort(t *testing.T) {
	p := testutil.FreePort(t)
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
	if err != nil {
		t.Fatalf("UDP on the free port %d: %v", p, err)
	}
	defer u.Close()
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		t.Fatalf("TCP on the free port %d: %v", p, err)
	}
	defer l.Close()
	if q := testutil.FreePort(t); q == p {
		t.Errorf("FreePort gave %d again while it was held", q)
	}
}
