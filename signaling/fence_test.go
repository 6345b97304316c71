package signaling_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/lease"
	redisstore "github.com/cau-project/cau/rooms/store/redis"
	"github.com/cau-project/cau/rooms/storetest"
	"github.com/cau-project/cau/sfu"
	"github.com/cau-project/cau/signaling"
)

// cutProxy is a TCP proxy to Redis that can be cut: every connection through it is
// closed and new ones are refused, as for a node whose link to Redis fails.
type cutProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns []net.Conn
	cut   bool
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(p.sever)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				_ = c.Close()
				_ = up.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

// sever cuts the node off from Redis.
func (p *cutProxy) sever() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	_ = p.ln.Close()
	for _, c := range p.conns {
		_ = c.Close()
	}
}

// leasedNode is an in-process signaling node with its own bridge, sharing meetings
// through leases in the Redis at redisAddr.
type leasedNode struct {
	sig *signaling.Server
	url string
}

func (n *leasedNode) ws() string { return "ws" + strings.TrimPrefix(n.url, "http") + "/ws" }

func startLeasedNode(t *testing.T, redisAddr string, keys auth.Keys) *leasedNode {
	t.Helper()
	ctx := context.Background()
	store, err := redisstore.Open(ctx, "redis://"+redisAddr, "cau:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	rdb := goredis.NewClient(&goredis.Options{Addr: redisAddr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
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
	hs.Start()
	t.Cleanup(func() {
		sig.Close()
		hs.Close()
		_ = b.Close()
	})
	return n
}

// TestNodeCutOffFromRedisStopsOwning is issue 16's split brain, with the cut made by a
// proxy between one node and Redis (not nftables): the node that owns a meeting loses
// Redis. It must stop acting as the meeting's owner (its sessions closed, so they move)
// before its lease expires and another node could take the meeting over; the other node
// then owns it with a higher fencing token and both endpoints are back, with media.
func TestNodeCutOffFromRedisStopsOwning(t *testing.T) {
	redisAddr := storetest.StartRedis(t)
	keys := auth.Keys{Current: []byte("test-key-0123456789-0123456789-0123456789")}
	proxy := startCutProxy(t, redisAddr)
	a := startLeasedNode(t, proxy.addr(), keys) // owns the meeting, then is cut off
	b := startLeasedNode(t, redisAddr, keys)
	join := func(first *leasedNode, site, name string) *client.Client {
		tok, err := keys.Sign(auth.Claims{Use: auth.UseJoin, Meeting: "m", Site: site, Name: name, Role: auth.RoleParticipant}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := client.Dial(ctx, first.ws(), tok, client.Options{Loopback: true, Logger: logger(),
			ResumeURLs: []string{b.ws(), a.ws()}})
		if err != nil {
			t.Fatalf("join %s: %v", name, err)
		}
		t.Cleanup(c.Close)
		if err := c.Publish(context.Background()); err != nil {
			t.Fatal(err)
		}
		return c
	}
	x := join(a, "central", "x") // a takes the lease
	y := join(b, "prov", "y")    // forwarded by b to a
	eventually(t, 20*time.Second, func() string {
		if why := receivesNow(x, y, 20); why != "" {
			return why
		}
		return receivesNow(y, x, 20)
	})
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

	proxy.sever()
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
		if why := receivesNow(x, y, 20); why != "" {
			return why
		}
		return receivesNow(y, x, 20)
	})
	if _, err := ids.ParseStreamKey(x.Me().Streams["camera"]); err != nil {
		t.Errorf("x's camera stream after the move: %v", err)
	}
}
