package signaling_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/internal/testkit"
	"github.com/cau-project/cau/internal/wan"
	"github.com/cau-project/cau/lease"
	redisstore "github.com/cau-project/cau/rooms/store/redis"
	"github.com/cau-project/cau/rooms/storetest"
	"github.com/cau-project/cau/sfu"
	"github.com/cau-project/cau/signaling"
)

// leasedNode is an in-process signaling node with its own bridge, sharing meetings
// through leases in the Redis at redisAddr.
type leasedNode struct {
	sig *signaling.Server
	url string
}

func (n *leasedNode) ws() string { return "ws" + strings.TrimPrefix(n.url, "http") + "/ws" }

// Its Redis clients are made as `cau signal` makes them (redisstore.Dial, go-redis's
// defaults).
func startLeasedNode(t *testing.T, redisAddr string, keys auth.Keys) *leasedNode {
	t.Helper()
	return startLeasedNodeOn(t, redisAddr, redisAddr, keys)
}

// startLeasedNodeOn is startLeasedNode with its store on the Redis at storeAddr and its
// leases on the one at leaseAddr (the same server, reached another way).
func startLeasedNodeOn(t *testing.T, storeAddr, leaseAddr string, keys auth.Keys) *leasedNode {
	t.Helper()
	store, _ := multiStore(t, storeAddr)
	rdb, err := redisstore.Dial("redis://" + leaseAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	b, err := sfu.New(sfu.Config{ICEUDPPort: 0, ICETCPPort: -1, IncludeLoopback: true, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	n := &leasedNode{}
	var sig *signaling.Server
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sig.ServeHTTP(w, r) }))
	n.url = "http://" + hs.Listener.Addr().String()
	sig = signaling.New(signaling.Config{Bridge: b, Site: "central", Keys: keys, Logger: logger(), Store: store,
		AdHocMeetings: true, Leases: lease.NewRedis(rdb, "cau:", n.url, 0)})
	n.sig = sig
	serveUntilCleanup(t, hs, sig, b)
	return n
}

// joinLeased joins meeting through node first as a participant of site, resuming through
// the resume nodes in turn.
func joinLeased(t *testing.T, keys auth.Keys, first *leasedNode, meeting, site, name string, resume ...*leasedNode) *client.Client {
	t.Helper()
	tok, err := keys.Sign(auth.Claims{Use: auth.UseJoin, Meeting: meeting, Site: site, Name: name, Role: auth.RoleParticipant}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	urls := make([]string, len(resume))
	for i, n := range resume {
		urls[i] = n.ws()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, first.ws(), tok, client.Options{Loopback: true, Logger: logger(), ResumeURLs: urls})
	if err != nil {
		t.Fatalf("join %s of %s: %v", name, meeting, err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestNodeCutOffFromRedisStopsOwning is issue 16's split brain, with the cut made by a
// proxy between one node and Redis (not nftables): the node that owns a meeting loses
// Redis. It must stop acting as the meeting's owner (its sessions closed, so they move)
// before its lease expires and another node could take the meeting over; the other node
// then owns it with a higher fencing token and both endpoints are back, with media.
func TestNodeCutOffFromRedisStopsOwning(t *testing.T) {
	redisAddr := storetest.StartRedis(t)
	keys := testKeys
	proxy := testkit.NewCutProxy(t, redisAddr)
	a := startLeasedNode(t, proxy.Addr(), keys) // owns the meeting, then is cut off
	b := startLeasedNode(t, redisAddr, keys)
	join := func(first *leasedNode, site, name string) *client.Client {
		c := joinLeased(t, keys, first, "m", site, name, b, a)
		if err := c.Publish(context.Background()); err != nil {
			t.Fatal(err)
		}
		return c
	}
	x := join(a, "central", "x") // a takes the lease
	y := join(b, "prov", "y")    // forwarded by b to a
	eventually(t, 20*time.Second, func() string { return receiveEachOther(x, y, 20) })
	if len(a.sig.Participants("m")) != 2 || len(b.sig.Participants("m")) != 0 {
		t.Fatalf("a runs %d participants and b %d, want 2 and 0 (b forwards)", len(a.sig.Participants("m")), len(b.sig.Participants("m")))
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: redisAddr})
	defer rdb.Close()
	reader := lease.NewRedis(rdb, "cau:", "http://reader", time.Second)
	holder := func() lease.Lease {
		l, _, err := reader.Holder(context.Background(), "m")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	before := holder()
	if before.Addr != a.url {
		t.Fatalf("the lease names %s, want node a %s", before.Addr, a.url)
	}

	proxy.Sever()
	cut := time.Now()
	var stopped, taken time.Duration
	eventually(t, 20*time.Second, func() string {
		if stopped == 0 && len(a.sig.Participants("m")) == 0 {
			stopped = time.Since(cut)
		}
		if taken == 0 {
			if l := holder(); l.Addr == b.url {
				taken = time.Since(cut)
				if l.Token <= before.Token {
					t.Errorf("b took the lease with token %d, not above a's %d", l.Token, before.Token)
				}
			}
		}
		switch {
		case stopped == 0:
			return "node a still runs the meeting"
		case taken == 0:
			return "node b has not taken the meeting over"
		}
		return ""
	})
	t.Logf("FENCING: a stopped acting as owner %v after the cut, b took the lease %v after it",
		stopped.Round(time.Millisecond), taken.Round(time.Millisecond))
	if stopped >= taken {
		t.Errorf("node a ran the meeting until %v after the cut, but b took it over at %v: two owners", stopped, taken)
	}
	eventually(t, 30*time.Second, func() string {
		if n := len(b.sig.Participants("m")); n != 2 {
			return fmt.Sprintf("node b runs %d participants, want 2", n)
		}
		return receiveEachOther(x, y, 20)
	})
	if _, err := ids.ParseStreamKey(x.Me().Streams["camera"]); err != nil {
		t.Errorf("x's camera stream after the move: %v", err)
	}
}

// blackhole drops, with nftables, every TCP segment to and from addr: a silent partition,
// where calls wait out their timeouts instead of failing at once as a closed connection
// does. The rule goes when the test ends.
func blackhole(t *testing.T, addr string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	table := fmt.Sprintf("caucut%d", os.Getpid())
	rules := fmt.Sprintf(`table inet %[1]s {
	chain in {
		type filter hook input priority 0;
		ip daddr %[2]s tcp dport %[3]s drop
		ip saddr %[2]s tcp sport %[3]s drop
	}
}
`, table, host, port)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "inet", table).Run() })
}

// TestNodeSilentlyCutOffFromRedisStopsOwning is issue 16's split brain with the cut made
// by nftables: every packet between the owning node and Redis is dropped, so its calls
// hang until their deadlines (the proxy test above sees connections closed at once).
// The node owns several meetings, so that it must renew their leases side by side: one
// after the other, each waiting out a timeout, the later ones would expire while the node
// still acted as their owner. For every meeting the node must stop acting as owner before
// any other node takes it over; the other node then owns them all with higher fencing
// tokens, and the two endpoints of the first meeting receive each other again.
func TestNodeSilentlyCutOffFromRedisStopsOwning(t *testing.T) {
	wan.Require(t)
	// Node a reaches Redis at 127.0.0.2, node b at 127.0.0.1: the rule cuts a alone.
	redis := storetest.StartRedisWith(t, "--bind", "127.0.0.1", "127.0.0.2")
	_, port, err := net.SplitHostPort(redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	aRedis := net.JoinHostPort("127.0.0.2", port)
	keys := testKeys
	a := startLeasedNode(t, aRedis, keys)
	b := startLeasedNode(t, redis.Addr, keys)
	join := func(first *leasedNode, meeting, site, name string) *client.Client {
		return joinLeased(t, keys, first, meeting, site, name, b, a)
	}
	const meetings = 8
	x := join(a, "m0", "central", "x") // a takes m0's lease
	y := join(b, "m0", "prov", "y")    // forwarded by b to a
	for _, c := range []*client.Client{x, y} {
		if err := c.Publish(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < meetings; i++ {
		join(a, fmt.Sprintf("m%d", i), "central", fmt.Sprintf("z%d", i))
	}
	eventually(t, 20*time.Second, func() string { return receiveEachOther(x, y, 20) })
	rdb := goredis.NewClient(&goredis.Options{Addr: redis.Addr})
	defer rdb.Close()
	reader := lease.NewRedis(rdb, "cau:", "http://reader", time.Second)
	holder := func(m string) lease.Lease {
		l, _, err := reader.Holder(context.Background(), ids.MeetingID(m))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	before := make([]lease.Lease, meetings)
	for i := range meetings {
		if before[i] = holder(fmt.Sprintf("m%d", i)); before[i].Addr != a.url {
			t.Fatalf("m%d's lease names %q, want node a %s", i, before[i].Addr, a.url)
		}
	}

	blackhole(t, aRedis)
	cut := time.Now()
	// When each lease expires now that a cannot renew it, read from Redis (which b still
	// reaches) once what a sent before the cut has landed.
	time.Sleep(50 * time.Millisecond)
	expires := make([]time.Time, meetings)
	for i := range meetings {
		pttl, err := rdb.PTTL(context.Background(), "cau:lease:"+fmt.Sprintf("m%d", i)).Result()
		if err != nil || pttl <= 0 {
			t.Fatalf("m%d's lease PTTL: %v %v", i, pttl, err)
		}
		expires[i] = time.Now().Add(pttl)
	}
	// When a stops acting as each meeting's owner, watched closely (every few ms) and
	// apart from the slower reads of Redis below.
	stopped := make([]time.Time, meetings)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for left := meetings; left > 0 && time.Since(cut) < 30*time.Second; time.Sleep(2 * time.Millisecond) {
			for i := range meetings {
				if stopped[i].IsZero() && !a.sig.OwnsMeeting(fmt.Sprintf("m%d", i)) {
					stopped[i] = time.Now()
					left--
				}
			}
		}
	}()
	emptied := make([]time.Time, meetings) // a ran no session of it any more
	taken := make([]time.Time, meetings)   // b holds the lease
	eventually(t, 30*time.Second, func() string {
		why := ""
		for i := range meetings {
			m := fmt.Sprintf("m%d", i)
			now := time.Now()
			if emptied[i].IsZero() && len(a.sig.Participants(m)) == 0 {
				emptied[i] = now
			}
			if taken[i].IsZero() {
				if l := holder(m); l.Addr == b.url {
					taken[i] = now
					if l.Token <= before[i].Token {
						t.Errorf("b took %s with token %d, not above a's %d", m, l.Token, before[i].Token)
					}
				}
			}
			switch {
			case why != "":
			case emptied[i].IsZero():
				why = "node a still runs " + m
			case taken[i].IsZero():
				why = "node b has not taken " + m + " over"
			}
		}
		return why
	})
	<-watched
	var margin, lastEmpty, firstTake time.Duration
	for i := range meetings {
		// The lease's last renewal could have been a little after the PTTL read: what
		// must hold is that a stopped before its lease could expire, and before b took it.
		if !stopped[i].Before(expires[i]) || !stopped[i].Before(taken[i]) {
			t.Errorf("node a acted as owner of m%d until %v after the cut, its lease expiring %v after it and b taking it %v after it: two owners",
				i, stopped[i].Sub(cut), expires[i].Sub(cut), taken[i].Sub(cut))
		}
		if d := expires[i].Sub(stopped[i]); i == 0 || d < margin {
			margin = d
		}
		lastEmpty = max(lastEmpty, emptied[i].Sub(cut))
		if d := taken[i].Sub(cut); i == 0 || d < firstTake {
			firstTake = d
		}
	}
	t.Logf("FENCING (nftables, %d meetings): a gave up every lease at least %v before it could expire; "+
		"its last session ended %v after the cut; b took the first meeting over %v after it",
		meetings, margin.Round(time.Millisecond), lastEmpty.Round(time.Millisecond), firstTake.Round(time.Millisecond))
	eventually(t, 30*time.Second, func() string {
		if n := len(b.sig.Participants("m0")); n != 2 {
			return fmt.Sprintf("node b runs %d participants of m0, want 2", n)
		}
		return receiveEachOther(x, y, 20)
	})
}
