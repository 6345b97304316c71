package lease_test

import (
	"context"
	"errors"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cau-project/cau/lease"
	"github.com/cau-project/cau/rooms/storetest"
)

// TestLeaseOwnerAndFencing runs two nodes' leases on a real Redis: one owner at a time;
// the other sees the owner's address; after the owner's lease expires the other takes it
// with a higher fencing token, and the old owner's renewal fails with ErrLost.
func TestLeaseOwnerAndFencing(t *testing.T) {
	addr := storetest.StartRedis(t)
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	defer rdb.Close()
	ctx := context.Background()
	ttl := 300 * time.Millisecond
	a := lease.NewRedis(rdb, "t:", "http://a", ttl)
	b := lease.NewRedis(rdb, "t:", "http://b", ttl)

	la, mine, err := a.Acquire(ctx, "m1")
	if err != nil || !mine {
		t.Fatalf("a acquires a free lease: mine=%v err=%v", mine, err)
	}
	again, mine, err := a.Acquire(ctx, "m1")
	if err != nil || !mine || again.Token != la.Token {
		t.Fatalf("a acquires its own lease again: %+v mine=%v err=%v, want token %d", again, mine, err, la.Token)
	}
	held, mine, err := b.Acquire(ctx, "m1")
	if err != nil || mine || held.Addr != "http://a" || held.Node != a.Node() || held.Token != la.Token {
		t.Fatalf("b sees %+v mine=%v err=%v, want a's lease", held, mine, err)
	}
	if err := a.Renew(ctx, la); err != nil {
		t.Fatalf("a renews: %v", err)
	}
	if h, ok, err := b.Holder(ctx, "m1"); err != nil || !ok || h.Node != a.Node() || h.Token != la.Token {
		t.Fatalf("b reads the holder %+v ok=%v err=%v, want a's lease", h, ok, err)
	}
	if _, ok, err := b.Holder(ctx, "none"); err != nil || ok {
		t.Fatalf("the holder of a meeting nobody holds: ok=%v err=%v", ok, err)
	}

	// a stops renewing (it died): once the lease expires b takes it, fenced higher.
	var lb lease.Lease
	deadline := time.Now().Add(5 * time.Second)
	for {
		lb, mine, err = b.Acquire(ctx, "m1")
		if err != nil {
			t.Fatal(err)
		}
		if mine || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !mine || lb.Token <= la.Token || lb.Addr != "http://b" {
		t.Fatalf("after a's lease expired b holds %+v mine=%v, want b's with a token above %d", lb, mine, la.Token)
	}
	if err := a.Renew(ctx, la); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("a renews a lease b took over: %v, want ErrLost", err)
	}
	if err := a.Release(ctx, la); err != nil {
		t.Fatal(err)
	}
	if cur, mine, err := a.Acquire(ctx, "m1"); err != nil || mine || cur.Node != b.Node() {
		t.Fatalf("a's stale release removed b's lease: %+v mine=%v err=%v", cur, mine, err)
	}
	if err := b.Release(ctx, lb); err != nil {
		t.Fatal(err)
	}
	if lc, mine, err := a.Acquire(ctx, "m1"); err != nil || !mine || lc.Token <= lb.Token {
		t.Fatalf("after b released, a holds %+v mine=%v err=%v, want a token above %d", lc, mine, err, lb.Token)
	}
}
