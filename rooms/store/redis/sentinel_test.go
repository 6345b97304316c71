package redis_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/rooms/store/redis"
	"github.com/cau-project/cau/rooms/storetest"
)

// TestSentinelFailover: the store opened with a Sentinel redis_url
// (redis://sentinel?master_name=cau, docs/deployment.md) follows a failover. The master
// is killed; the sentinel promotes the replica; the store's next writes succeed on the
// new master, and the sites, meeting and roll call written before the kill (replicated
// before it: WAIT) are all there.
func TestSentinelFailover(t *testing.T) {
	s := storetest.StartSentinel(t)
	ctx := t.Context()
	master := goredis.NewClient(&goredis.Options{Addr: s.Master.Addr})
	defer master.Close()
	testutil.Eventually(t, 20*time.Second, func() string {
		info, err := master.Info(ctx, "replication").Result()
		if err != nil {
			return err.Error()
		}
		if !containsLine(info, "connected_slaves:1") {
			return "the replica has not connected to the master"
		}
		return ""
	})
	store, err := redis.Open(ctx, s.URL(), "cau:")
	if err != nil {
		t.Fatalf("open through the sentinel: %v", err)
	}
	defer store.Close()
	tree := storetest.Tree(t)
	if err := store.SaveSites(ctx, tree.Sites()); err != nil {
		t.Fatal(err)
	}
	m := storetest.Meeting("giao-ban", 0, 2, "tw", "p1", "p2")
	if err := store.CreateMeeting(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	event := func(site string, at time.Time) rooms.AttendanceEvent {
		return rooms.AttendanceEvent{Time: at, MeetingID: m.ID, Site: site, Endpoint: "room-" + site, Kind: rooms.EventConnected}
	}
	if err := store.AppendAttendance(ctx, event("tw", m.Start)); err != nil {
		t.Fatal(err)
	}
	if n, err := master.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT for the replica: %d, %v", n, err)
	}

	s.Master.Kill()
	killed := time.Now()
	var moved time.Duration
	testutil.Eventually(t, 30*time.Second, func() string {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := store.AppendAttendance(wctx, event("p1", m.Start.Add(time.Minute))); err != nil {
			return "write after the master's kill: " + err.Error()
		}
		moved = time.Since(killed)
		return ""
	})
	got, err := store.Meeting(ctx, m.ID)
	if err != nil || got.Title != m.Title {
		t.Errorf("the meeting after the failover: %+v, %v", got, err)
	}
	evs, err := store.Attendance(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Site != "tw" || evs[1].Site != "p1" {
		t.Errorf("roll call after the failover: %+v, want tw's event from before the kill and p1's from after", evs)
	}
	if sites, err := store.Sites(ctx); err != nil || len(sites) != len(tree.Sites()) {
		t.Errorf("sites after the failover: %d, %v; want %d", len(sites), err, len(tree.Sites()))
	}
	sentinel := goredis.NewSentinelClient(&goredis.Options{Addr: s.Addr})
	defer sentinel.Close()
	if addr, err := sentinel.GetMasterAddrByName(ctx, s.MasterName).Result(); err != nil ||
		fmt.Sprintf("%s:%s", addr[0], addr[1]) != s.Replica.Addr {
		t.Errorf("the sentinel names master %v (%v), want the promoted replica %s", addr, err, s.Replica.Addr)
	}
	t.Logf("SENTINEL: the store wrote again %v after the master's kill", moved.Round(time.Millisecond))
}

// containsLine says whether an INFO reply has the line.
func containsLine(info, line string) bool {
	return slices.Contains(strings.Split(strings.ReplaceAll(info, "\r", ""), "\n"), line)
}
