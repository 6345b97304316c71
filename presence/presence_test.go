package presence_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/presence"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/rooms/storetest"
)

// events collects what a follower delivers.
type events struct {
	mu  sync.Mutex
	got []presence.Event
}

func (e *events) add(ev presence.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, ev)
}

// lost counts the events that deliver id as lost with its node, with its endpoint.
func (e *events) lost(id, endpoint string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.got {
		if ev.Lost && ev.Left && ev.Participant.ID == id && ev.Endpoint == endpoint && !ev.At.IsZero() {
			n++
		}
	}
	return n
}

func (e *events) left(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.got {
		if ev.Left && ev.Participant.ID == id {
			return true
		}
	}
	return false
}

// TestCrashedNodesParticipantsLeave (issue 12, finding 8): a signaling node that crashes
// withdraws nobody. Its participants used to stay on the other nodes as ghosts for as long
// as the meeting lasted; now, once its liveness key has expired, followers deliver them
// as left and their entries leave the meeting's hash, while the living node's
// participants stay. One follower (the one that removed the entry) is told the
// participant was lost, with its endpoint, so one node records it in the roll call.
func TestCrashedNodesParticipantsLeave(t *testing.T) {
	addr := storetest.StartRedis(t)
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	node := func(c context.Context) *presence.Redis {
		p, err := presence.NewRedis(c, rdb, "cau:", testutil.Logger())
		if err != nil {
			t.Fatal(err)
		}
		p.Resync = 100 * time.Millisecond
		return p
	}
	crashCtx, crash := context.WithCancel(ctx)
	doomed, alive, watcher, watcher2 := node(crashCtx), node(ctx), node(ctx), node(ctx)

	ghost := protocol.Participant{ID: "p-ghost", Name: "Xã A", Site: "xa-a"}
	stays := protocol.Participant{ID: "p-stays", Name: "Xã B", Site: "xa-b"}
	if err := doomed.Announce(ctx, "m1", ghost, "ep-ghost"); err != nil {
		t.Fatal(err)
	}
	if err := alive.Announce(ctx, "m1", stays, "ep-stays"); err != nil {
		t.Fatal(err)
	}
	var seen, seen2 events
	others, err := watcher.Follow(ctx, "m1", seen.add)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watcher2.Follow(ctx, "m1", seen2.add); err != nil {
		t.Fatal(err)
	}
	if len(others) != 2 {
		t.Fatalf("the watcher sees %v, want both participants", others)
	}

	// The doomed node stops refreshing (a crash), and its liveness key expires (here at
	// once rather than after its TTL).
	crash()
	raw, err := rdb.HGet(ctx, "cau:presence:m1", ghost.ID).Result()
	if err != nil {
		t.Fatal(err)
	}
	var entry struct{ Node string }
	if err := json.Unmarshal([]byte(raw), &entry); err != nil || entry.Node == "" {
		t.Fatalf("presence entry %q: %v", raw, err)
	}
	if err := rdb.Del(ctx, "cau:node:"+entry.Node).Err(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() string {
		if !seen.left(ghost.ID) || !seen2.left(ghost.ID) {
			return "the crashed node's participant has not left"
		}
		if n, _ := rdb.HLen(ctx, "cau:presence:m1").Result(); n != 1 {
			return fmt.Sprintf("the meeting's hash holds %d entries, want the living node's one", n)
		}
		return ""
	})
	if seen.left(stays.ID) {
		t.Fatal("the living node's participant was delivered as left")
	}
	// One follower removed the entry and was told the participant was lost, with its
	// endpoint (it records the disconnect in the roll call); the other saw it leave.
	if n := seen.lost(ghost.ID, "ep-ghost") + seen2.lost(ghost.ID, "ep-ghost"); n != 1 {
		t.Fatalf("the ghost was delivered as lost %d times (with its endpoint), want once", n)
	}
}
