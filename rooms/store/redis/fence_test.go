package redis_test

import (
	"context"
	"errors"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/lease"
	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/rooms/storetest"
)

// TestWritesFencedByTheLeaseToken is issue 16's fencing of store writes: a meeting
// owner's roll-call, audit and floor writes carry its lease's token (rooms.WithFence),
// and once another node has taken the lease (a higher token) a write decided under the
// old token is refused with rooms.ErrFenced and leaves nothing in the store, while the
// new owner's writes go through. Real Redis, real leases (package lease).
func TestWritesFencedByTheLeaseToken(t *testing.T) {
	addr := storetest.StartRedis(t)
	p := prefix(t)
	s := open(t, addr, p)
	t.Cleanup(func() { _ = s.Close() })
	ctx := t.Context()
	m := storetest.Meeting("m", 0, 2, "tw", "p1", "p2")
	if err := s.CreateMeeting(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	const ttl = 200 * time.Millisecond
	a := lease.NewRedis(rdb, p, "http://a", ttl)
	b := lease.NewRedis(rdb, p, "http://b", ttl)
	la, mine, err := a.Acquire(ctx, "m")
	if err != nil || !mine {
		t.Fatalf("a acquires: %v %v", mine, err)
	}
	fenceA := rooms.Fence{Key: a.FenceKey("m"), Token: la.Token}
	attend := func(ctx context.Context, site string) error {
		return s.AppendAttendance(ctx, rooms.AttendanceEvent{Time: time.Now(), MeetingID: "m", Site: site,
			Endpoint: "room-" + site, Kind: rooms.EventConnected})
	}
	request := func(ctx context.Context, site string) error {
		_, err := s.UpdateFloor(ctx, "m", func(f *rooms.Floor) error {
			return f.Request(rooms.Actor{Role: rooms.RoleParticipant, Site: site})
		})
		return err
	}
	audit := func(ctx context.Context, what string) error {
		return s.AppendAudit(ctx, rooms.AuditEntry{Actor: "x", Action: what, Target: "m"})
	}
	// While a holds the lease its fenced writes are made.
	ctxA := rooms.WithFence(ctx, fenceA)
	for _, err := range []error{attend(ctxA, "tw"), request(ctxA, "p1"), audit(ctxA, "by-a")} {
		if err != nil {
			t.Fatalf("a's write while it holds the lease: %v", err)
		}
	}
	// a's lease lapses (a node cut off) and b takes it with a higher token.
	time.Sleep(2 * ttl)
	lb, mine, err := b.Acquire(ctx, "m")
	if err != nil || !mine || lb.Token <= la.Token {
		t.Fatalf("b acquires: %+v %v %v (a had token %d)", lb, mine, err, la.Token)
	}
	// The writes a decided under its token, made now, are refused and leave nothing.
	for what, err := range map[string]error{"attendance": attend(ctxA, "p1"), "floor": request(ctxA, "p2"),
		"audit": audit(ctxA, "late-by-a")} {
		if !errors.Is(err, rooms.ErrFenced) {
			t.Errorf("a's %s write after b took the lease: err %v, want ErrFenced", what, err)
		}
	}
	ctxB := rooms.WithFence(ctx, rooms.Fence{Key: b.FenceKey(ids.MeetingID("m")), Token: lb.Token})
	for _, err := range []error{attend(ctxB, "p1"), audit(ctxB, "by-b")} {
		if err != nil {
			t.Fatalf("b's write: %v", err)
		}
	}
	evs, err := s.Attendance(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Site != "tw" || evs[1].Site != "p1" {
		t.Errorf("roll call %+v, want a's tw then b's p1", evs)
	}
	st, err := s.Floor(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != 1 || len(st.Requests) != 1 {
		t.Errorf("floor %+v, want only a's request from before b took the lease", st)
	}
	entries, err := s.Audit(ctx, rooms.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	if len(actions) != 2 || actions[0] != "by-a" || actions[1] != "by-b" {
		t.Errorf("audit %v, want [by-a by-b]", actions)
	}
	// A write without a fence (one node, no leases) is made as before.
	if err := attend(ctx, "tw"); err != nil {
		t.Errorf("unfenced write: %v", err)
	}
}
