package signaling_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/testkit"
	"github.com/cau-project/cau/presence"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/rooms"
	redisstore "github.com/cau-project/cau/rooms/store/redis"
	"github.com/cau-project/cau/rooms/storetest"
	"github.com/cau-project/cau/sfu"
	"github.com/cau-project/cau/signaling"
)

var multiTree = []rooms.Site{
	{ID: "central", Name: "Trung ương", Level: "central"},
	{ID: "prov", Name: "Tỉnh", Level: "province", Parent: "central"},
	{ID: "xa-a", Name: "Xã A", Level: "commune", Parent: "prov"},
	{ID: "xa-b", Name: "Xã B", Level: "commune", Parent: "prov"},
	{ID: "khac", Name: "Xã khác", Level: "commune", Parent: "prov"},
}

// testKeys sign the tokens of the tests that run more than one node (or a bridge process).
var testKeys = auth.Keys{Current: []byte("test-key-0123456789-0123456789-0123456789")}

// multiStore opens a store on the Redis at addr (closed when the test ends) and builds
// multiTree; tests schedule their meetings through it.
func multiStore(t *testing.T, addr string) (*redisstore.Store, *rooms.Tree) {
	t.Helper()
	tree := testkit.Tree(t, multiTree...)
	store, err := redisstore.Open(context.Background(), "redis://"+addr, "cau:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store, tree
}

// giaoBanOnRedis starts a Redis, opens a store on it (multiStore) and schedules giaoBan
// through it: where the tests of several nodes on one Redis start.
func giaoBanOnRedis(t *testing.T) (addr string, store *redisstore.Store, tree *rooms.Tree, m rooms.Meeting) {
	t.Helper()
	addr = storetest.StartRedis(t)
	store, tree = multiStore(t, addr)
	m, err := rooms.NewScheduler(store, tree).Schedule(context.Background(), giaoBan())
	if err != nil {
		t.Fatal(err)
	}
	return addr, store, tree, m
}

// giaoBan is the training meeting of central, prov, xa-a and xa-b, open from a minute
// ago for an hour.
func giaoBan() rooms.Meeting {
	now := time.Now()
	return rooms.Meeting{ID: "giao-ban", Title: "Giao ban", ChairSite: "central",
		Sites: []string{"central", "prov", "xa-a", "xa-b"}, Start: now.Add(-time.Minute), End: now.Add(time.Hour),
		Mode: rooms.ModeTraining}
}

// serveUntilCleanup starts hs and closes it, sig and b (in that order) when the test ends.
func serveUntilCleanup(t *testing.T, hs *httptest.Server, sig *signaling.Server, b io.Closer) {
	hs.Start()
	t.Cleanup(func() {
		sig.Close()
		hs.Close()
		_ = b.Close()
	})
}

// startNode runs one signaling server with its own bridge against the shared Redis.
func startNode(t *testing.T, redisAddr string, tree *rooms.Tree, keys auth.Keys) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return startNodeWith(t, redisAddr, tree, keys, nodePresence(ctx, t, redisAddr))
}

// nodePresence is a node's presence on the shared Redis, refreshed until ctx ends.
func nodePresence(ctx context.Context, t *testing.T, redisAddr string) *presence.Redis {
	t.Helper()
	rdb := goredis.NewClient(&goredis.Options{Addr: redisAddr})
	t.Cleanup(func() { _ = rdb.Close() })
	pres, err := presence.NewRedis(ctx, rdb, "cau:", logger())
	if err != nil {
		t.Fatal(err)
	}
	return pres
}

// startNodeWith is startNode with the node's presence given.
func startNodeWith(t *testing.T, redisAddr string, tree *rooms.Tree, keys auth.Keys, pres signaling.Presence) *testServer {
	t.Helper()
	store, _ := multiStore(t, redisAddr)
	b, err := sfu.New(sfu.Config{ICEUDPPort: 0, ICETCPPort: -1, IncludeLoopback: true, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	sig := signaling.New(signaling.Config{Bridge: b, Site: "central", Ancestry: tree.Ancestors, Keys: keys,
		Logger: logger(), Store: store, Tree: tree, Presence: pres})
	hs := httptest.NewUnstartedServer(sig)
	serveUntilCleanup(t, hs, sig, b)
	return &testServer{keys: keys, ws: "ws" + strings.TrimPrefix(hs.URL, "http"), sig: sig}
}

// TestTwoSignalingNodesShareAMeeting runs two signaling servers on one Redis: endpoints
// on either see the same participants and the same floor, within a second.
func TestTwoSignalingNodesShareAMeeting(t *testing.T) {
	addr, setup, tree, _ := giaoBanOnRedis(t)
	keys := testKeys
	ctx := context.Background()
	now := time.Now()
	if _, err := rooms.NewScheduler(setup, tree).Schedule(ctx, rooms.Meeting{ID: "later", Title: "Later", ChairSite: "central",
		Sites: []string{"central", "xa-a"}, Start: now.Add(5 * time.Hour), End: now.Add(6 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	n1, n2 := startNode(t, addr, tree, keys), startNode(t, addr, tree, keys)

	chair := n1.joinAs(t, "giao-ban", "central", "Chủ tọa", auth.RoleChair)
	a := n2.joinAs(t, "giao-ban", "xa-a", "Xã A", auth.RoleRoom)
	within := func(what string, cond func() bool) {
		t.Helper()
		eventually(t, time.Second, func() string {
			if !cond() {
				return what
			}
			return ""
		})
	}
	within("the chair (node 1) does not see Xã A (node 2)", func() bool { _, ok := chair.Participants()[a.Self.ID]; return ok })
	within("Xã A (node 2) does not see the chair (node 1)", func() bool { _, ok := a.Participants()[chair.Self.ID]; return ok })
	if f := a.Floor(); f == nil || f.Mode != "training" || f.ChairSite != "central" {
		t.Fatalf("Xã A's floor at join: %+v, want the scheduled training mode", f)
	}

	if _, err := a.FloorAction(ctx, protocol.FloorAction{Action: protocol.FloorRequest}); err != nil {
		t.Fatal(err)
	}
	within("the chair does not see Xã A's request", func() bool { f := chair.Floor(); return len(f.Requests) == 1 })
	if _, err := chair.FloorAction(ctx, protocol.FloorAction{Action: protocol.FloorGrant, Site: "xa-a"}); err != nil {
		t.Fatal(err)
	}
	within("Xã A does not see itself granted the floor", func() bool {
		f := a.Floor()
		return len(f.Speakers) == 1 && f.Speakers[0].Site == "xa-a"
	})

	// Admission: a site outside the meeting, and a meeting outside its window, are refused.
	for _, c := range []struct{ meeting, site string }{{"giao-ban", "khac"}, {"later", "xa-a"}, {"nope", "xa-a"}} {
		tok, _ := keys.Sign(auth.Claims{Use: auth.UseJoin, Meeting: c.meeting, Site: c.site, Role: auth.RoleParticipant}, time.Hour)
		if _, err := dialRaw(n1, tok); err == nil || !strings.Contains(err.Error(), protocol.CodeForbidden) {
			t.Errorf("join %s from %s: %v, want forbidden", c.meeting, c.site, err)
		}
	}

	a.Leave()
	within("the chair still lists Xã A after it left node 2", func() bool { _, ok := chair.Participants()[a.Self.ID]; return !ok })

	// The roll call has Xã A connecting and leaving.
	eventually(t, 2*time.Second, func() string {
		evs, err := setup.Attendance(ctx, "giao-ban")
		if err != nil {
			return err.Error()
		}
		var kinds []string
		for _, e := range evs {
			if e.Site == "xa-a" {
				kinds = append(kinds, string(e.Kind))
			}
		}
		if fmt.Sprint(kinds) != "[connected disconnected]" {
			return fmt.Sprintf("Xã A's attendance %v, want [connected disconnected]", kinds)
		}
		return ""
	})
}

// dialRaw joins with tok and returns the join error, if any.
func dialRaw(ts *testServer, tok string) (*client.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, ts.ws, tok, client.Options{Loopback: true, Logger: logger()})
	if err == nil {
		c.Close()
	}
	return c, err
}
