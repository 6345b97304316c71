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
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Require skips the test (or fails it under CI=true) unless the process is root and has
// ip and nft.
func Require(t testing.TB) {
	t.Helper()
	missing := ""
	for _, bin := range []string{"ip", "nft", "tc"} {
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
// namespace PeerIP. UDP between them passes only through the relay ports (RelayPort to
// RelayPort+RelayPeers-1 on the host side), where LossPct of the packets are dropped in
// each direction.
type Link struct {
	NS             string
	HostIP, PeerIP string
	RelayPort      int
}

// Config shapes a Link.
type Config struct {
	// Subnet is the /24 prefix asked for, e.g. "10.201.0"; the host gets .1 and the
	// namespace .2 (HostIP, PeerIP). Another process using it already, the next free /24
	// of the same /16 is taken instead (claim).
	Subnet string
	// RelayPort is the first host-side port of the delaying relay's sockets towards the
	// namespace (one per peer, RelayPeers at most).
	RelayPort int
	// LossPct of UDP packets crossing the relay are dropped, each direction.
	LossPct int
}

// RelayPeers is how many peers a Relay serves at most: one host-side port each. A bridge's
// relay links bind sockets of their own, so two peers of one bridge pair (the link's two
// directions) already need two.
const RelayPeers = 16

// New creates the namespace, the veth pair and the nftables rules, and removes them when
// the test ends.
func New(t testing.TB, cfg Config) *Link {
	t.Helper()
	subnet, release := claim(t, cfg.Subnet)
	defer release()
	l := &Link{NS: fmt.Sprintf("cauwan%d-%s", os.Getpid()%100000, strings.Split(subnet, ".")[1]),
		HostIP: subnet + ".1", PeerIP: subnet + ".2", RelayPort: cfg.RelayPort}
	if len(l.NS) > 15 {
		l.NS = l.NS[:15]
	}
	hostIf, peerIf := vethNames("cw", subnet)
	namespace(t, l.NS, hostIf, peerIf, l.PeerIP, l.HostIP)
	nft(t, l.NS, l.rules(cfg.LossPct, 0))
	return l
}

// SetLoss replaces the link's loss, in one nftables transaction: lossPct of the packets
// crossing the relay ports dropped each way, and, with onlyFrom set, nothing but that
// UDP port in the namespace may send to the host.
func (l *Link) SetLoss(t testing.TB, lossPct, onlyFrom int) {
	t.Helper()
	nft(t, l.NS, "delete table inet wan\n"+l.rules(lossPct, onlyFrom))
}

// rules is the link's nftables table: UDP crosses only through the relay ports, where
// lossPct of the packets are dropped in each direction; onlyFrom (0: any) is the one
// port in the namespace that may send to the host.
func (l *Link) rules(lossPct, onlyFrom int) string {
	only := ""
	if onlyFrom != 0 {
		only = fmt.Sprintf("ip daddr %s udp sport != %d drop", l.HostIP, onlyFrom)
	}
	return fmt.Sprintf(`table inet wan {
	chain in {
		type filter hook input priority 0;
		ip saddr %[1]s udp sport != %[2]d-%[3]d drop
		ip saddr %[1]s udp sport %[2]d-%[3]d numgen random mod 100 < %[4]d drop
	}
	chain out {
		type filter hook output priority 0;
		ip daddr %[1]s udp dport != %[2]d-%[3]d drop
		%[5]s
		ip daddr %[1]s udp dport %[2]d-%[3]d numgen random mod 100 < %[4]d drop
	}
}
`, l.HostIP, l.RelayPort, l.RelayPort+RelayPeers-1, lossPct, only)
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

// vethNames are the two ends of a namespace's veth pair: prefix, this process's id and
// the subnet's second octet (each test has its own), so that two processes running the
// same test never take, or delete as a crashed run's leftover, each other's interfaces.
// 15 bytes at most (IFNAMSIZ).
func vethNames(prefix, subnet string) (host, peer string) {
	base := fmt.Sprintf("%s%d-%s", prefix, os.Getpid(), strings.Split(subnet, ".")[1])
	return base + "h", base + "p"
}

// vethName matches the host ends vethNames makes, with the process id.
var vethName = regexp.MustCompile(`^c[wfs](\d+)-\d+h$`)

// claim picks the /24 of a namespace asked under subnet (e.g. "10.206.0"): that one
// while no interface of the host has an address in it, else the next free third octet
// (10.206.1, …). Another process may be running the same test (another engineer's, or
// packages in parallel): the same host address on two veths would route one namespace's
// traffic to the other. The choice is made under an exclusive lock on a file, held until
// release (once the address is on the veth), so that two processes starting together
// do not both take the same free subnet. Host ends of the veth pairs that processes no
// longer running left behind (a test killed before its cleanup) go first.
func claim(t testing.TB, subnet string) (claimed string, release func()) {
	t.Helper()
	lock, err := os.OpenFile(os.TempDir()+"/cau-wan.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("wan lock: %v", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		_ = lock.Close()
		t.Fatalf("wan lock: %v", err)
	}
	release = func() { _ = lock.Close() } // closing the file drops the lock
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		release()
		t.Fatalf("ip link show: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if m := vethName.FindStringSubmatch(name); m != nil {
			if _, err := os.Stat("/proc/" + m[1]); os.IsNotExist(err) {
				_ = exec.Command("ip", "link", "del", name).Run()
			}
		}
	}
	out, err = exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		release()
		t.Fatalf("ip addr show: %v", err)
	}
	used := map[string]bool{}
	for _, f := range strings.Fields(string(out)) {
		if ip, _, ok := strings.Cut(f, "/"); ok && net.ParseIP(ip) != nil {
			used[ip[:strings.LastIndexByte(ip, '.')]] = true
		}
	}
	o := strings.Split(subnet, ".")
	third, _ := strconv.Atoi(o[2])
	for k := range 256 {
		c := fmt.Sprintf("%s.%s.%d", o[0], o[1], (third+k)%256)
		if !used[c] {
			return c, release
		}
	}
	release()
	t.Fatalf("no free /24 under %s.%s", o[0], o[1])
	return "", nil
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
// target inside the namespace, holding each packet for the current delay in each
// direction, as a port forward would: each peer gets an inner socket of its own
// (RelayPort, RelayPort+1, …, RelayPeers at most) towards the target, so the target tells
// the peers apart. Announce its public address as the target's candidate (cau bridge
// --announce).
type Relay struct {
	link   *Link
	public *net.UDPConn
	target *net.UDPAddr
	// delay is the current holding time in ns; SetDelay changes it while the relay runs.
	delay atomic.Int64
	// heldNs and held sum the real holding times of delayed packets: on a loaded machine
	// timers fire late, and a test that measures delay must know by how much.
	heldNs, held atomic.Int64
	// down counts the packets read on the public socket: what was sent towards the
	// namespace, less what the public socket's full buffer dropped.
	down atomic.Int64

	mu    sync.Mutex              // guards inner
	inner map[string]*net.UDPConn // by peer address
}

// NewRelay starts a relay on l's host side towards target, holding packets for delay.
func (l *Link) NewRelay(t testing.TB, target *net.UDPAddr, delay time.Duration) *Relay {
	t.Helper()
	pub, err := ListenUDP(l.HostIP, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{link: l, public: pub, target: target, inner: map[string]*net.UDPConn{}}
	r.delay.Store(int64(delay))
	t.Cleanup(func() {
		_ = pub.Close()
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, c := range r.inner {
			_ = c.Close()
		}
	})
	go pump(pub, func(b []byte, src *net.UDPAddr) {
		if inner := r.innerFor(src); inner != nil {
			r.down.Add(1)
			r.later(func() { _, _ = inner.WriteToUDP(b, r.target) })
		}
	})
	return r
}

// pump hands each datagram read on c, in a buffer of its own (a delayed write still holds
// it), to handle, until c is closed.
func pump(c *net.UDPConn, handle func(b []byte, from *net.UDPAddr)) {
	for {
		buf := make([]byte, 1600)
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			return
		}
		handle(buf[:n], from)
	}
}

// innerFor returns peer's inner socket, opening it (and its return pump) first; nil once
// RelayPeers are served.
func (r *Relay) innerFor(peer *net.UDPAddr) *net.UDPConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.inner[peer.String()]; c != nil {
		return c
	}
	if len(r.inner) == RelayPeers {
		return nil
	}
	c, err := ListenUDP(r.link.HostIP, r.link.RelayPort+len(r.inner))
	if err != nil {
		return nil
	}
	r.inner[peer.String()] = c
	go pump(c, func(b []byte, _ *net.UDPAddr) {
		r.later(func() { _, _ = r.public.WriteToUDP(b, peer) })
	})
	return c
}

// later runs f after the current delay (at once without one), counting the real hold.
func (r *Relay) later(f func()) {
	d := time.Duration(r.delay.Load())
	if d <= 0 {
		f()
		return
	}
	start := time.Now()
	time.AfterFunc(d, func() {
		r.heldNs.Add(int64(time.Since(start)))
		r.held.Add(1)
		f()
	})
}

// SetDelay changes the holding time, each way, from the next packet on.
func (r *Relay) SetDelay(d time.Duration) { r.delay.Store(int64(d)) }

// MeanHold is the mean time packets were really held since the counters read (ns, n)
// before (0, 0 for all time), and the counters now, for the next call.
func (r *Relay) MeanHold(ns, n int64) (mean time.Duration, nowNs, nowN int64) {
	cns, cn := r.heldNs.Load(), r.held.Load()
	if cn == n {
		return 0, cns, cn
	}
	return time.Duration((cns - ns) / (cn - n)), cns, cn
}

// Down counts the packets read on the public socket so far (towards the namespace).
func (r *Relay) Down() int64 { return r.down.Load() }

// Addr is the relay's public address, "ip:port".
func (r *Relay) Addr() string { return r.public.LocalAddr().String() }

// Port is the relay's public port.
func (r *Relay) Port() int { return r.public.LocalAddr().(*net.UDPAddr).Port }

// SocketBuffer is the receive and send buffer of the relays' sockets: large enough that a
// relay paused by a loaded test machine queues packets instead of dropping them, which
// would add loss nobody configured.
const SocketBuffer = 4 << 20

// ListenUDP opens a UDP socket on ip:port (0: any port) with SocketBuffer each way (as far
// as net.core.rmem_max and wmem_max allow).
func ListenUDP(ip string, port int) (*net.UDPConn, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip), Port: port})
	if err != nil {
		return nil, fmt.Errorf("relay socket %s:%d: %w", ip, port, err)
	}
	if err := c.SetReadBuffer(SocketBuffer); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("relay socket receive buffer: %w", err)
	}
	if err := c.SetWriteBuffer(SocketBuffer); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("relay socket send buffer: %w", err)
	}
	return c, nil
}

// SocketDrops sums the kernel's drop counters (full receive buffers, mostly) of the UDP
// sockets bound to these local ports, in namespace ns ("" for the host's). A test
// compares measured loss with what it configured: what a busy machine's sockets dropped
// is loss too, and the measurement is right to count it.
func SocketDrops(ns string, ports ...int) (uint64, error) {
	args := []string{"cat", "/proc/net/udp"}
	if ns != "" {
		args = inNS(ns, args...)
	}
	out, err := exec.Command(args[0], args[1:]...).Output()
	if err != nil {
		return 0, fmt.Errorf("read /proc/net/udp in %q: %w", ns, err)
	}
	want := map[uint64]bool{}
	for _, p := range ports {
		want[uint64(p)] = true
	}
	var drops uint64
	for _, line := range strings.Split(string(out), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 13 {
			continue
		}
		_, portHex, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		port, err := strconv.ParseUint(portHex, 16, 16)
		if err != nil || !want[port] {
			continue
		}
		d, err := strconv.ParseUint(f[len(f)-1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("drops of port %d in %q: %w", port, ns, err)
		}
		drops += d
	}
	return drops, nil
}
