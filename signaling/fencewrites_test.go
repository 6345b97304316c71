package signaling_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cau-project/cau/internal/testkit"
	"github.com/cau-project/cau/lease"
	"github.com/cau-project/cau/rooms"
)

// TestWriteQueuedBeforeLeaseLostIsNotMade is issue 16's fencing of store writes, end to
// end: node a owns the meeting and queues a roll-call write (y connected) that cannot be
// made yet (its writer is held, as a slow store would hold it); a is then cut off from
// the leases (its store still reaches Redis), gives the meeting up, and node b takes it
// over with a higher token. When a's writer goes on, the write it queued under the old
// token is refused by the store: the roll call has y's connection once, as b recorded
// it when y resumed there.
func TestWriteQueuedBeforeLeaseLostIsNotMade(t *testing.T) {
	redisAddr, store, _, _ := giaoBanOnRedis(t)
	keys := testKeys
	ctx := context.Background()
	if err := store.SaveSites(ctx, multiTree); err != nil {
		t.Fatal(err)
	}
	proxy := testkit.NewCutProxy(t, redisAddr)
	a := startLeasedNodeOn(t, redisAddr, proxy.Addr(), keys) // leases through the proxy
	b := startLeasedNode(t, redisAddr, keys)
	x := joinLeased(t, keys, a, "giao-ban", "central", "x", b, a) // a takes the lease
	release, ok := a.sig.HoldWrites("giao-ban")
	if !ok {
		t.Fatal("node a does not run the meeting")
	}
	t.Cleanup(release)
	y := joinLeased(t, keys, a, "giao-ban", "prov", "y", b, a) // its connect waits in a's queue
	yEndpoint := y.Me().ID

	rdb := goredis.NewClient(&goredis.Options{Addr: redisAddr})
	defer rdb.Close()
	reader := lease.NewRedis(rdb, "cau:", "http://reader", time.Second)
	before, _, err := reader.Holder(ctx, "giao-ban")
	if err != nil || before.Addr != a.url {
		t.Fatalf("the lease is %+v (%v), want node a's", before, err)
	}
	proxy.Sever()
	eventually(t, 30*time.Second, func() string {
		l, _, err := reader.Holder(ctx, "giao-ban")
		switch {
		case err != nil:
			return err.Error()
		case l.Addr != b.url:
			return "node b has not taken the meeting over"
		case len(b.sig.Participants("giao-ban")) != 2:
			return fmt.Sprintf("node b runs %d participants, want 2", len(b.sig.Participants("giao-ban")))
		}
		return ""
	})
	if x.Me().ID == "" || y.Me().ID != yEndpoint {
		t.Errorf("y resumed as %q, want its participant id %q kept", y.Me().ID, yEndpoint)
	}
	release() // a's writer goes on: the connect it queued under its old token
	connects := func() int {
		evs, err := store.Attendance(ctx, "giao-ban")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range evs {
			if e.Endpoint == yEndpoint && e.Kind == rooms.EventConnected {
				n++
			}
		}
		return n
	}
	eventually(t, 10*time.Second, func() string {
		if n := connects(); n < 1 {
			return "node b has not recorded y's connection"
		}
		return ""
	})
	time.Sleep(time.Second) // a's write, made now, would land within this
	if n := connects(); n != 1 {
		t.Errorf("the roll call has y connected %d times, want once (b's): a's write queued before it lost the lease was made", n)
	}
}
