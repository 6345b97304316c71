package signaling_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/rooms/storetest"
)

// TestRedisRestartMidMeeting is issue 16's third test. Redis, run as docs/deployment.md
// asks (append-only file, fsync before every acknowledgement), is killed with SIGKILL
// mid-meeting and started again after longer than a lease's TTL, so the owning node
// gives the meeting up and its sessions must come back. It checks that:
//   - media between the endpoints already in the meeting keeps flowing while Redis is
//     down (the bridges forward on);
//   - a join while Redis is down gets the retryable `unavailable` error, and the same
//     join succeeds once Redis is back;
//   - nothing recorded before the kill is lost: the meeting, its roll-call events and
//     the audit entries of the floor changes, and the lease's fencing token, which only
//     grows;
//   - afterwards everyone receives everyone, the floor unchanged.
func TestRedisRestartMidMeeting(t *testing.T) {
	redis := storetest.StartDurableRedis(t)
	now := time.Now()
	const meeting = "hop-tinh"
	c := startHAClusterOn(t, redis.Addr, rooms.Meeting{ID: meeting, Title: "Họp tỉnh", ChairSite: "prov",
		Sites: []string{"prov", "xa-a", "xa-b", "khac"}, Start: now.Add(-time.Minute), End: now.Add(time.Hour),
		Mode: rooms.ModeDirected})
	// All on the province's bridge: what this test is about is the store, not relay links.
	chair := c.join(t, 0, meeting, "prov", "ep-prov", auth.RoleChair, newGapMeter())
	a := c.join(t, 1, meeting, "xa-a", "ep-xa-a", auth.RoleRoom, newGapMeter())
	b := c.join(t, 2, meeting, "xa-b", "ep-xa-b", auth.RoleRoom, newGapMeter())
	ctx := context.Background()
	for _, site := range []string{"xa-a", "xa-b"} {
		if _, err := chair.FloorAction(ctx, protocol.FloorAction{Action: protocol.FloorGrant, Site: site, Mic: true, Camera: true}); err != nil {
			t.Fatalf("grant %s: %v", site, err)
		}
	}
	pairsReceive := func(n int64, pairs ...[2]*client.Client) func() string {
		return func() string {
			for _, p := range pairs {
				if why := receivesNow(p[0], p[1], n); why != "" {
					return why
				}
			}
			return ""
		}
	}
	eventually(t, 60*time.Second, pairsReceive(30, [2]*client.Client{a, b}, [2]*client.Client{b, a},
		[2]*client.Client{chair, a}, [2]*client.Client{chair, b}))

	// What the store holds before the kill: every write acknowledged, so on disk.
	_, tokenBefore := c.leaseOf(t, meeting)
	var attendanceBefore []rooms.AttendanceEvent
	var auditBefore []rooms.AuditEntry
	eventually(t, 10*time.Second, func() string {
		var err error
		if attendanceBefore, err = c.store.Attendance(ctx, meeting); err != nil {
			return err.Error()
		}
		if auditBefore, err = c.store.Audit(ctx, rooms.AuditQuery{}); err != nil {
			return err.Error()
		}
		if len(attendanceBefore) < 3 || len(auditBefore) < 2 {
			return fmt.Sprintf("%d roll-call events and %d audit entries recorded, want 3 and 2", len(attendanceBefore), len(auditBefore))
		}
		return ""
	})

	oldA, oldB := a.Stream(b.Me().Streams[protocol.SourceCamera], "audio"), b.Stream(a.Me().Streams[protocol.SourceCamera], "audio")
	a0, b0 := oldA.Packets.Load(), oldB.Packets.Load()
	killed := time.Now()
	redis.Kill()

	// A join while Redis is down: refused at once, retryable, and saying why.
	tok, err := c.keys.Sign(auth.Claims{Use: auth.UseJoin, Meeting: meeting, Site: "khac", Name: "Xã khác",
		Role: auth.RoleRoom, Endpoint: "ep-khac"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	late, err := client.Dial(jctx, c.nodes[2].ws(), tok, client.Options{Loopback: true, Logger: logger()})
	cancel()
	if err == nil {
		late.Close()
		t.Fatal("a join while Redis is down succeeded; want the retryable unavailable error")
	}
	if !strings.Contains(err.Error(), protocol.CodeUnavailable) {
		t.Errorf("a join while Redis is down failed with %q, want the %q error", err, protocol.CodeUnavailable)
	}
	t.Logf("join while Redis is down: %v", err)

	time.Sleep(4*time.Second - time.Since(killed)) // a restart, longer than a lease's TTL
	if err := redis.Start(); err != nil {
		t.Fatalf("restart redis: %v", err)
	}
	restarted := time.Since(killed)
	if da, db := oldA.Packets.Load()-a0, oldB.Packets.Load()-b0; da < 50 || db < 50 {
		t.Errorf("in the %v Redis was down xa-a received %d and xa-b %d audio packets from each other, want 50 at least",
			restarted.Round(time.Millisecond), da, db)
	}

	// The same join, once Redis is back, succeeds.
	var khac *client.Client
	eventually(t, 30*time.Second, func() string {
		jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		cl, err := client.Dial(jctx, c.nodes[2].ws(), tok, client.Options{Loopback: true, Logger: logger()})
		if err != nil {
			return "join after the restart: " + err.Error()
		}
		khac = cl
		return ""
	})
	t.Cleanup(khac.Close)
	joinedAgain := time.Since(killed)
	if err := khac.Publish(ctx); err != nil {
		t.Fatalf("publish khac: %v", err)
	}
	eventually(t, 60*time.Second, pairsReceive(10, [2]*client.Client{a, b}, [2]*client.Client{b, a},
		[2]*client.Client{khac, a}, [2]*client.Client{khac, b}, [2]*client.Client{chair, a}))
	back := time.Since(killed)

	// Nothing recorded before the kill is lost.
	if _, err := c.store.Meeting(ctx, meeting); err != nil {
		t.Errorf("the meeting after the restart: %v", err)
	}
	attendanceAfter, err := c.store.Attendance(ctx, meeting)
	if err != nil {
		t.Fatal(err)
	}
	auditAfter, err := c.store.Audit(ctx, rooms.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(attendanceAfter) < len(attendanceBefore) {
		t.Errorf("roll call: %d events before the restart, %d after", len(attendanceBefore), len(attendanceAfter))
	} else {
		for i, e := range attendanceBefore {
			if got := attendanceAfter[i]; !got.Time.Equal(e.Time) || got.Kind != e.Kind || got.Endpoint != e.Endpoint {
				t.Errorf("roll-call event %d: %+v before the restart, %+v after", i, e, got)
			}
		}
	}
	// The owner gave the meeting up while Redis was down, and its sessions came back
	// through the new owner; their media never stopped, so the roll call has no drop.
	for _, e := range attendanceAfter[min(len(attendanceBefore), len(attendanceAfter)):] {
		if e.Kind == rooms.EventDisconnected {
			t.Errorf("roll call records %s (%s) disconnected at %v; its media never stopped", e.Site, e.Endpoint, e.Time)
		}
	}
	if len(auditAfter) < len(auditBefore) {
		t.Errorf("audit: %d entries before the restart, %d after", len(auditBefore), len(auditAfter))
	}
	if node, tokenAfter := c.leaseOf(t, meeting); node == "" || tokenAfter <= tokenBefore {
		t.Errorf("after the restart the lease is %q with token %d, want a holder with a token above %d", node, tokenAfter, tokenBefore)
	}
	if f := a.Floor(); f == nil || len(f.Speakers) != 2 {
		t.Errorf("floor after the restart: %+v, want xa-a and xa-b speaking", f)
	}
	t.Logf("Redis down %v; a join succeeded again %v after the kill; everyone receiving %v after; "+
		"roll call %d → %d events, audit %d → %d entries",
		restarted.Round(time.Millisecond), joinedAgain.Round(time.Millisecond), back.Round(time.Millisecond),
		len(attendanceBefore), len(attendanceAfter), len(auditBefore), len(auditAfter))
}
