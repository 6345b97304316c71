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
// namespace .2), unshaped, and removes it when the test ends. It needs tc besides ip.
func NewShaped(t testing.TB, subnet string) *Shaped {
	t.Helper()
	Require(t)
	if _, err := exec.LookPath("tc"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("WAN test needs tc under CI: %v", err)
		}
		t.Skipf("WAN test: %v", err)
	}
	octet := strings.Split(subnet, ".")[1]
	s := &Shaped{NS: fmt.Sprintf("caush%d-%s", os.Getpid()%100000, octet), HostIP: subnet + ".1",
		PeerIP: subnet + ".2", hostIf: "cs" + octet + "h"}
	if len(s.NS) > 15 {
		s.NS = s.NS[:15]
	}
	namespace(t, s.NS, s.hostIf, "cs"+octet+"p", s.PeerIP, s.HostIP)
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
// in-process peer to use (a pion peer through an ice.UDPMux over it): a socket stays in
// the namespace it was made in, whichever thread uses it later. Closed when the test ends.
func (s *Shaped) ListenUDP(t testing.TB) *net.UDPConn {
	t.Helper()
	type result struct {
		c   *net.UDPConn
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The thread enters the namespace only to make the socket. If it cannot come back
		// it stays locked, and the runtime ends it with the goroutine.
		runtime.LockOSThread()
		back, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			done <- result{err: err}
			return
		}
		defer back.Close()
		target, err := os.Open("/var/run/netns/" + s.NS)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("enter %s: %w", s.NS, err)}
			return
		}
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(s.PeerIP)})
		if unix.Setns(int(back.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- result{c, err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("listen in %s: %v", s.NS, r.err)
	}
	t.Cleanup(func() { _ = r.c.Close() })
	return r.c
}
