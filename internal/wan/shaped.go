package wan

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Shaped is a namespace whose downlink (what the host sends it) is rate-limited with tbf
// on the host side of its veth pair: a commune's thin link. Nothing else is filtered. The
// host side has HostIP, the namespace PeerIP.
type Shaped struct {
	NS, HostIP, PeerIP string
	hostIf             string
}

// NewShaped creates the namespace under subnet (a /24 prefix such as "10.207.0": host .1,
// namespace .2; the next free one if another process uses it), unshaped, and removes it
// when the test ends. It needs tc besides ip.
func NewShaped(t testing.TB, subnet string) *Shaped {
	t.Helper()
	Require(t)
	if _, err := exec.LookPath("tc"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("WAN test needs tc under CI: %v", err)
		}
		t.Skipf("WAN test: %v", err)
	}
	subnet, release := claim(t, subnet)
	defer release()
	s := &Shaped{NS: fmt.Sprintf("caush%d-%s", os.Getpid()%100000, strings.Split(subnet, ".")[1]), HostIP: subnet + ".1",
		PeerIP: subnet + ".2"}
	if len(s.NS) > 15 {
		s.NS = s.NS[:15]
	}
	var peerIf string
	s.hostIf, peerIf = vethNames("cs", subnet)
	namespace(t, s.NS, s.hostIf, peerIf, s.PeerIP, s.HostIP)
	return s
}

// SetRate limits the namespace's downlink to kbps kbit/s (tbf, a 200 ms queue, as a
// provider's shaper); 0 lifts the limit.
func (s *Shaped) SetRate(t testing.TB, kbps int) {
	t.Helper()
	if kbps == 0 {
		_ = exec.Command("tc", "qdisc", "del", "dev", s.hostIf, "root").Run()
		return
	}
	run(t, "tc", "qdisc", "replace", "dev", s.hostIf, "root", "tbf", "rate", fmt.Sprintf("%dkbit", kbps),
		"burst", "16kbit", "latency", "200ms")
}

// ListenUDP opens a UDP socket inside the namespace, on PeerIP and a free port, for an
// in-process peer to use (a pion peer through an ice.UDPMux over it). Closed when the
// test ends.
func (s *Shaped) ListenUDP(t testing.TB) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	s.Do(t, func() error {
		var err error
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(s.PeerIP)})
		return err
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Do runs fn on a thread inside the namespace: the sockets fn opens (an in-process
// bridge's, a peer's) stay there, whichever thread uses them later. Only fn's own
// goroutine is inside; fn must not rely on goroutines it starts to open sockets.
func (s *Shaped) Do(t testing.TB, fn func() error) {
	t.Helper()
	inside(t, s.NS, fn)
}

// inside runs fn on a thread inside namespace ns (see Shaped.Do) and fails the test if
// the thread cannot enter it or fn fails.
func inside(t testing.TB, ns string, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		// The thread enters the namespace for fn only. If it cannot come back it stays
		// locked, and the runtime ends it with the goroutine.
		runtime.LockOSThread()
		back, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			done <- err
			return
		}
		defer back.Close()
		target, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			done <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("enter %s: %w", ns, err)
			return
		}
		err = fn()
		if unix.Setns(int(back.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatalf("in %s: %v", ns, err)
	}
}

// Exec returns args as a command line that runs inside the namespace (a bridge process
// whose sockets must all be behind the shaped link).
func (s *Shaped) Exec(args ...string) []string { return inNS(s.NS, args...) }
