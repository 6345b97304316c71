package signaling_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/rooms"
)

// TestFloorChangeMissedByWatch (issue 12, finding 8): a floor change whose notification
// a node never got (published while its Redis subscription was down; here written to
// the store with no notification at all) used to stay unseen by that node's endpoints
// until the next change. The node now reads the floor back from the store every few
// seconds, and its endpoints get the change.
func TestFloorChangeMissedByWatch(t *testing.T) {
	addr, setup, tree, m := giaoBanOnRedis(t)
	keys := testKeys
	ctx := context.Background()
	n := startNode(t, addr, tree, keys)
	a := n.joinAs(t, "giao-ban", "xa-a", "Xã A", auth.RoleRoom)

	// The chair grants Xã A the floor; the state reaches the store, the notification
	// nobody.
	st, err := setup.Floor(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	f := rooms.RestoreFloor(m, st)
	if err := f.Grant(rooms.Actor{Role: rooms.RoleChair, Site: "central"}, "xa-a", rooms.MicAndCamera); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(f.State())
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	defer rdb.Close()
	if err := rdb.Set(ctx, "cau:floor:"+m.ID, data, 0).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, func() string {
		if fl := a.Floor(); fl == nil || len(fl.Speakers) != 1 || fl.Speakers[0].Site != "xa-a" {
			return "Xã A has not seen the floor change its node's watch missed"
		}
		return ""
	})
}
