package signaling_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/rooms"
)

// TestCrashedNodesEndpointsLeaveTheRollCall (issue 12, finding 7, with presence): three
// signaling servers share a scheduled meeting through real Redis (presence and store),
// one endpoint on each. The first node crashes as Redis sees it (its liveness key stops
// being refreshed and expires; it withdraws no one and writes no disconnect). Its
// endpoint must not stay online in the roll call: one of the other nodes (the one whose
// follower removed the dead entry) records it disconnected, once, dated after its
// connect; the others' endpoints stay connected.
func TestCrashedNodesEndpointsLeaveTheRollCall(t *testing.T) {
	addr, setup, tree, m := giaoBanOnRedis(t)
	keys := testKeys
	ctx := context.Background()
	crashCtx, crash := context.WithCancel(ctx)
	t.Cleanup(crash)
	liveCtx, stop := context.WithCancel(ctx)
	t.Cleanup(stop)
	doomedPres := nodePresence(crashCtx, t, addr)
	doomed := startNodeWith(t, addr, tree, keys, doomedPres)
	var nodes []*testServer
	for range 2 {
		p := nodePresence(liveCtx, t, addr)
		p.Resync = 100 * time.Millisecond
		nodes = append(nodes, startNodeWith(t, addr, tree, keys, p))
	}
	lost := doomed.joinAs(t, "giao-ban", "xa-a", "Xã A", auth.RoleRoom)
	chair := nodes[0].joinAs(t, "giao-ban", "central", "Chủ tọa", auth.RoleChair)
	b := nodes[1].joinAs(t, "giao-ban", "xa-b", "Xã B", auth.RoleRoom)
	eventually(t, 20*time.Second, func() string {
		if _, ok := chair.Participants()[lost.Self.ID]; !ok {
			return "the chair does not see Xã A"
		}
		if _, ok := b.Participants()[lost.Self.ID]; !ok {
			return "Xã B does not see Xã A"
		}
		return ""
	})

	// The crash, as the other nodes see it: the node stops refreshing its liveness key,
	// which expires (here at once rather than after its 10 s).
	crash()
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	defer rdb.Close()
	raw, err := rdb.HGet(ctx, "cau:presence:giao-ban", lost.Self.ID).Result()
	if err != nil {
		t.Fatal(err)
	}
	var entry struct{ Node, Endpoint string }
	if err := json.Unmarshal([]byte(raw), &entry); err != nil || entry.Node == "" {
		t.Fatalf("presence entry %q: %v", raw, err)
	}
	if entry.Endpoint != lost.Self.ID {
		t.Errorf("the presence entry carries endpoint %q, want %q", entry.Endpoint, lost.Self.ID)
	}
	if err := rdb.Del(ctx, "cau:node:"+entry.Node).Err(); err != nil {
		t.Fatal(err)
	}

	attendance := func(site string) []rooms.AttendanceEvent {
		evs, err := setup.Attendance(ctx, "giao-ban")
		if err != nil {
			t.Fatal(err)
		}
		var out []rooms.AttendanceEvent
		for _, e := range evs {
			if e.Site == site {
				out = append(out, e)
			}
		}
		return out
	}
	eventually(t, 20*time.Second, func() string {
		if _, ok := chair.Participants()[lost.Self.ID]; ok {
			return "the chair still sees Xã A"
		}
		if _, ok := b.Participants()[lost.Self.ID]; ok {
			return "Xã B still sees Xã A"
		}
		if evs := attendance("xa-a"); len(evs) < 2 {
			return fmt.Sprintf("Xã A's roll call is %v, want it connected then disconnected", evs)
		}
		return ""
	})
	time.Sleep(500 * time.Millisecond) // five resyncs: a second disconnect would be written by now
	evs := attendance("xa-a")
	if len(evs) != 2 || evs[0].Kind != rooms.EventConnected || evs[1].Kind != rooms.EventDisconnected ||
		evs[1].Endpoint != evs[0].Endpoint || evs[1].Time.Before(evs[0].Time) {
		t.Fatalf("Xã A's roll call: %+v, want one connect and one later disconnect of its endpoint", evs)
	}
	rc, err := rooms.BuildRollCall(rooms.Meeting{ID: "giao-ban", Sites: []string{"central", "xa-a", "xa-b"},
		Start: m.Start, End: m.End}, evs, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rc {
		if r.Site == "xa-a" && r.Online {
			t.Errorf("the roll call shows Xã A online after its node crashed: %+v", r)
		}
	}
	for _, site := range []string{"central", "xa-b"} {
		for _, e := range attendance(site) {
			if e.Kind == rooms.EventDisconnected {
				t.Errorf("%s, on a live node, is recorded disconnected", site)
			}
		}
	}
}
