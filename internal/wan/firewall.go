package wan

import (
	"fmt"
	"os"
	"testing"
)

// Firewalled is a namespace behind a firewall that lets only TCP to port 443 out (and its
// replies in): no UDP at all, no other TCP port. The host side of its veth has two
// addresses, so that a web server and a TURN server can both listen on 443: WebIP and
// TURNIP; the namespace has PeerIP.
type Firewalled struct {
	NS                    string
	WebIP, TURNIP, PeerIP string
}

// NewFirewalled creates the namespace under subnet (a /24 prefix such as "10.214.0":
// host .1 and .3, namespace .2; the next free one if another process uses it) and
// removes it when the test ends. Loopback inside the
// namespace stays open (a browser's own plumbing).
func NewFirewalled(t testing.TB, subnet string) *Firewalled {
	t.Helper()
	Require(t)
	subnet, release := claim(t, subnet)
	defer release()
	f := &Firewalled{NS: fmt.Sprintf("caufw%d", os.Getpid()%100000), WebIP: subnet + ".1", TURNIP: subnet + ".3",
		PeerIP: subnet + ".2"}
	hostIf, peerIf := vethNames("cf", subnet)
	namespace(t, f.NS, hostIf, peerIf, f.PeerIP, f.WebIP, f.TURNIP)
	rules := `table inet fw {
	chain out {
		type filter hook output priority 0; policy drop;
		oif "lo" accept
		ct state established,related accept
		meta l4proto tcp tcp dport 443 accept
	}
	chain in {
		type filter hook input priority 0; policy drop;
		iif "lo" accept
		ct state established,related accept
	}
}
`
	nft(t, f.NS, rules)
	return f
}

// Exec prefixes a command so it runs inside the namespace.
func (f *Firewalled) Exec(args ...string) []string { return inNS(f.NS, args...) }

// Wrapper writes an executable script into dir that runs path inside the namespace with
// the script's arguments (open file descriptors pass through: a browser driven over
// --remote-debugging-pipe keeps its pipe).
func (f *Firewalled) Wrapper(t testing.TB, dir, path string) string {
	t.Helper()
	script := dir + "/in-" + f.NS + ".sh"
	body := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", f.NS, path)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}
