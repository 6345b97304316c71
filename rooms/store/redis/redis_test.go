package redis_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/rooms/store/redis"
	"github.com/cau-project/cau/rooms/storetest"
)

// prefix gives each test its own key space on the shared server.
func prefix(t *testing.T) string {
	return fmt.Sprintf("test:%s:%x:", strings.ReplaceAll(t.Name(), "/", "."), rand.Uint32())
}

func open(t *testing.T, addr, prefix string) *redis.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := redis.Open(ctx, "redis://"+addr+"/0", prefix)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStore(t *testing.T) {
	addr := storetest.StartRedis(t)
	storetest.Run(t, func(t *testing.T) rooms.Store {
		s := open(t, addr, prefix(t))
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// TestReopen is a signaling node restarting: the data stays in Redis.
func TestReopen(t *testing.T) {
	addr := storetest.StartRedis(t)
	storetest.RunReopen(t, func(t *testing.T) func() rooms.Store {
		p := prefix(t)
		return func() rooms.Store { return open(t, addr, p) }
	})
}

func TestTwoNodes(t *testing.T) {
	addr := storetest.StartRedis(t)
	storetest.RunTwoNodes(t, func(t *testing.T) func() rooms.Store {
		p := prefix(t)
		return func() rooms.Store { return open(t, addr, p) }
	})
}

// TestPrefixes checks that two prefixes on one server do not see each other and that
// every key the store writes starts with its prefix.
func TestPrefixes(t *testing.T) {
	addr := storetest.StartRedis(t)
	a, b := open(t, addr, "alpha:"), open(t, addr, "beta:")
	defer a.Close()
	defer b.Close()
	ctx := t.Context()
	m := storetest.Meeting("m", 0, 1, "tw", "p1")
	if err := a.CreateMeeting(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.UpdateFloor(ctx, "m", func(f *rooms.Floor) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := a.AppendAudit(ctx, rooms.AuditEntry{Actor: "x", Action: "schedule", Target: "m"}); err != nil {
		t.Fatal(err)
	}
	if err := a.AppendAttendance(ctx, rooms.AttendanceEvent{Time: storetest.Base, MeetingID: "m", Site: "tw", Endpoint: "e", Kind: rooms.EventConnected}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Meeting(ctx, "m"); !errors.Is(err, rooms.ErrNotFound) {
		t.Errorf("prefix beta sees alpha's meeting: %v", err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	defer c.Close()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatal("no keys written")
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "alpha:") {
			t.Errorf("key %q outside the prefix", k)
		}
	}
	if got := a.Prefix(); got != "alpha:" {
		t.Errorf("Prefix = %q", got)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := redis.Open(ctx, "mysql://nope", ""); err == nil {
		t.Error("bad URL accepted")
	}
	// A port nothing listens on (the listener is closed before the dial).
	if _, err := redis.Open(ctx, "redis://127.0.0.1:1/0", ""); err == nil {
		t.Error("unreachable server accepted")
	}
}
