// Package wan builds impaired network links for tests, on a kernel without netem: a
// network namespace joined to the host by a veth pair, nftables dropping a share of the
// UDP packets that cross it, and a UDP relay that delays them. Tests that use it need
// root, ip and nft; under CI=true their absence fails the test instead of skipping it.
package wan

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Require skips the test (or fails it under CI=true) unless the process is root and has
// ip and nft.
func Require(t testing.TB) {
	t.Helper()
	missing := ""
	for _, bin := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = bin + " not found"
		}
	}
	if os.Geteuid() != 0 {
		missing = "not root"
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("WAN test needs root, ip and nft under CI: %s", missing)
	}
	t.Skipf("WAN test: %s", missing)
}

// Link is a namespace on the far side of an impaired link. The host side has HostIP, the
// namespace PeerIP. UDP between them passes only through the relay port (RelayPort on the
// host side), where LossPct of the packets are dropped in each direction.
type Link struct {
	NS             string
	HostIP, PeerIP string
	RelayPort      int
}

// Config shapes a Link.
type Config struct {
	// Subnet is the /24 prefix, e.g. "10.201.0"; the host gets .1 and the namespace .2.
	Subnet string
	// RelayPort is the host-side port of the delaying relay's socket towards the namespace.
	RelayPort int
	// LossPct of UDP packets crossing the relay are dropped, each direction.
	LossPct int
}

// New creates the namespace, the veth pair and the nftables rules, and removes them when
// the test ends.
func New(t testing.TB, cfg Config) *Link {
	t.Helper()
	l := &Link{NS: fmt.Sprintf("cauwan%d-%s", os.Getpid()%100000, strings.ReplaceAll(cfg.Subnet, ".", "")),
		HostIP: cfg.Subnet + ".1", PeerIP: cfg.Subnet + ".2", RelayPort: cfg.RelayPort}
	if len(l.NS) > 15 {
		l.NS = l.NS[:15]
	}
	hostIf, peerIf := "cw"+strings.Split(cfg.Subnet, ".")[1]+"h", "cw"+strings.Split(cfg.Subnet, ".")[1]+"p"
	namespace(t, l.NS, hostIf, peerIf, l.PeerIP, l.HostIP)
	rules := fmt.Sprintf(`table inet wan {
	chain in {
		type filter hook input priority 0;
		ip saddr %[1]s udp sport != %[2]d drop
		ip saddr %[1]s udp sport %[2]d numgen random mod 100 < %[3]d drop
	}
	chain out {
		type filter hook output priority 0;
		ip daddr %[1]s udp dport != %[2]d drop
		ip daddr %[1]s udp dport %[2]d numgen random mod 100 < %[3]d drop
	}
}
`, l.HostIP, cfg.RelayPort, cfg.LossPct)
	nft(t, l.NS, rules)
	return l
}

// Exec prefixes a command so it runs inside the namespace.
func (l *Link) Exec(args ...string) []string { return inNS(l.NS, args...) }

// namespace creates namespace ns joined to the host by the veth pair hostIf (host side,
// with hostIPs) and peerIf (inside, with peerIP), all /24, with loopback up inside; what
// a crashed earlier run left under those names goes first, and everything goes when the
// test ends.
func namespace(t testing.TB, ns, hostIf, peerIf, peerIP string, hostIPs ...string) {
	t.Helper()
	_ = exec.Command("ip", "netns", "del", ns).Run()
	_ = exec.Command("ip", "link", "del", hostIf).Run()
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", ns).Run()
		_ = exec.Command("ip", "link", "del", hostIf).Run()
	})
	run(t, "ip", "link", "add", hostIf, "type", "veth", "peer", "name", peerIf)
	run(t, "ip", "link", "set", peerIf, "netns", ns)
	for _, ip := range hostIPs {
		run(t, "ip", "addr", "add", ip+"/24", "dev", hostIf)
	}
	run(t, "ip", "link", "set", hostIf, "up")
	run(t, inNS(ns, "ip", "addr", "add", peerIP+"/24", "dev", peerIf)...)
	run(t, inNS(ns, "ip", "link", "set", peerIf, "up")...)
	run(t, inNS(ns, "ip", "link", "set", "lo", "up")...)
}

// inNS prefixes a command so it runs inside namespace ns.
func inNS(ns string, args ...string) []string {
	return append([]string{"ip", "netns", "exec", ns}, args...)
}

// nft loads rules (nft -f syntax) into namespace ns.
func nft(t testing.TB, ns, rules string) {
	t.Helper()
	cmd := exec.Command("ip", inNS(ns, "nft", "-f", "-")[1:]...)
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
}

func run(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Relay forwards UDP between whoever sends to its public socket (on the host side) and a
// target inside the namespace, holding each packet for Delay in each direction. Announce
// its public address as the target's candidate (cau bridge --announce).
type Relay struct {
	public, inner *net.UDPConn
	target        *net.UDPAddr
	delay         time.Duration
	mu            sync.Mutex
	peer          *net.UDPAddr // the last sender on the public side
}

// NewRelay starts a relay on l's host side towards target.
func (l *Link) NewRelay(t testing.TB, target *net.UDPAddr, delay time.Duration) *Relay {
	t.Helper()
	pub, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(l.HostIP)})
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(l.HostIP), Port: l.RelayPort})
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{public: pub, inner: inner, target: target, delay: delay}
	t.Cleanup(func() {
		_ = pub.Close()
		_ = inner.Close()
	})
	go r.pump(pub, func(from *net.UDPAddr) *net.UDPAddr {
		r.mu.Lock()
		r.peer = from
		r.mu.Unlock()
		return r.target
	}, inner)
	go r.pump(inner, func(*net.UDPAddr) *net.UDPAddr {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.peer
	}, pub)
	return r
}

func (r *Relay) pump(from *net.UDPConn, dest func(*net.UDPAddr) *net.UDPAddr, to *net.UDPConn) {
	for {
		buf := make([]byte, 1600)
		n, src, err := from.ReadFromUDP(buf)
		if err != nil {
			return
		}
		d := dest(src)
		if d == nil {
			continue
		}
		time.AfterFunc(r.delay, func() { _, _ = to.WriteToUDP(buf[:n], d) })
	}
}

// Addr is the relay's public address, "ip:port".
func (r *Relay) Addr() string { return r.public.LocalAddr().String() }
