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
)

func (ts *testServer) joinAs(t testing.TB, meeting, site, name string, role auth.Role) *client.Client {
	t.Helper()
	tok, err := ts.keys.Sign(auth.Claims{Use: auth.UseJoin, Meeting: meeting, Site: site, Name: name, Role: role}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, ts.ws, tok, client.Options{Loopback: true, Logger: logger()})
	if err != nil {
		t.Fatalf("join %s: %v", name, err)
	}
	t.Cleanup(c.Close)
	return c
}

// growing reports whether rx keeps receiving tx's audio over the next window.
func growing(rx, tx *client.Client, window time.Duration) bool {
	s := rx.Stream(tx.Self.Streams[protocol.SourceCamera], "audio")
	if s == nil {
		time.Sleep(window)
		s = rx.Stream(tx.Self.Streams[protocol.SourceCamera], "audio")
		return s != nil && s.Packets.Load() > 0
	}
	before := s.Packets.Load()
	time.Sleep(window)
	return s.Packets.Load() > before+5
}

// TestFloorControlsForwarding runs training mode: only the chair and the site granted
// the floor are forwarded; a participant cannot grant; revoking stops the forwarding.
func TestFloorControlsForwarding(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	chair := ts.joinAs(t, "m1", "central", "chair", auth.RoleChair)
	a := ts.joinAs(t, "m1", "xa-a", "Xã A", auth.RoleParticipant)
	b := ts.joinAs(t, "m1", "xa-b", "Xã B", auth.RoleParticipant)
	for _, c := range []*client.Client{chair, a, b} {
		if err := c.Publish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 15*time.Second, func() string { return receivesFrom(b, a, 20) + receivesFrom(a, chair, 20) })
	if f := a.Floor(); f == nil || f.Mode != "discussion" || f.ChairSite != "central" {
		t.Fatalf("floor at join: %+v, want discussion chaired by central", f)
	}

	if _, err := chair.FloorAction(ctx, protocol.FloorAction{Action: protocol.FloorSetMode, Mode: "training"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, func() string {
		if f := b.Floor(); f.Mode != "training" {
			return "B has not seen the switch to training"
		}
		return ""
	})
	if growing(b, a, 600*time.Millisecond) {
		t.Fatal("training mode: B still receives A, who has not been given the floor")
	}
	eventually(t, 3*time.Second, func() string {
		if !growing(b, chair, 300*time.Millisecond) {
			return "training mode: B no longer receives the chair"
		}
		return ""
	})

	if _, err := a.FloorAction(ctx, protocol.FloorAction{Action: protocol.FloorGrant, Site: "xa-a"}); err == nil ||
		!strings.Contains(err.Error(), protocol.CodeForbidden) {
		t.Fatalf("a participant granting itself the floor: %v, want forbidden", err)
	}
	if _, err := a.FloorAction(ctx, protocol.FloorAction{Action: protocol.FloorRequest}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, func() string {
		if f := chair.Floor(); len(f.Requests) != 1 || f.Requests[0].Site != "xa-a" {
			return fmt.Sprintf("the chair sees requests %+v, want xa-a", f.Requests)
		}
		return ""
	})
	if _, err := chair.FloorAction(ctx, protocol.FloorAction{Action: protocol.FloorGrant, Site: "xa-a"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() string {
		if !growing(b, a, 300*time.Millisecond) {
			return "B does not receive A after the chair granted A the floor"
		}
		return ""
	})
	if growing(a, b, 600*time.Millisecond) {
		t.Fatal("A receives B, who does not have the floor")
	}
	if f := b.Floor(); len(f.Speakers) != 1 || f.Speakers[0].Site != "xa-a" {
		t.Fatalf("B sees speakers %+v, want xa-a", f.Speakers)
	}

	if _, err := chair.FloorAction(ctx, protocol.FloorAction{Action: protocol.FloorRevoke, Site: "xa-a"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, func() string {
		if growing(b, a, 400*time.Millisecond) {
			return "B still receives A after the floor was revoked"
		}
		return ""
	})
	if f := b.Floor(); f.Previous != "xa-a" {
		t.Errorf("previous speaker %q, want xa-a (layouts keep it in the second window)", f.Previous)
	}
}

func TestChairEndsMeeting(t *testing.T) {
	ts := startServer(t, nil)
	chair := ts.joinAs(t, "m1", "central", "chair", auth.RoleChair)
	a := ts.joinAs(t, "m1", "xa-a", "Xã A", auth.RoleParticipant)
	if _, err := a.FloorAction(context.Background(), protocol.FloorAction{Action: protocol.FloorEnd}); err == nil {
		t.Fatal("a participant ended the meeting")
	}
	f, err := chair.FloorAction(context.Background(), protocol.FloorAction{Action: protocol.FloorEnd})
	if err != nil {
		t.Fatalf("the chair's end request got no answer: %v", err)
	}
	if !f.Ended {
		t.Fatalf("floor after end: %+v", f)
	}
	closedWith(t, chair, "", "the chair's socket after it ended the meeting")
	closedWith(t, a, "4005", "the participant's socket after the chair ended the meeting (meeting ended)")
}

// closedWith waits up to 3 s for c's socket to close and, when code is not empty, checks
// the close carried it; what names the socket in a failure.
func closedWith(t *testing.T, c *client.Client, code, what string) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(3 * time.Second):
		t.Fatalf("%s stayed open", what)
	}
	if code != "" && !strings.Contains(fmt.Sprint(c.Err()), code) {
		t.Fatalf("%s closed with %v, want %s", what, c.Err(), code)
	}
}

// TestRoomDeviceRejoinReplacesOldSession: a meeting-room device that joins again (after a
// reload) replaces its old session, which is closed with 4004.
func TestRoomDeviceRejoinReplacesOldSession(t *testing.T) {
	ts := startServer(t, nil)
	tok, err := ts.keys.Sign(auth.Claims{Use: auth.UseJoin, Meeting: "m1", Site: "xa-a", Name: "Phòng họp xã A", Role: auth.RoleRoom, Endpoint: "room-xa-a"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other := ts.joinAs(t, "m1", "central", "chair", auth.RoleChair)
	first, err := dialKeep(ts, tok)
	if err != nil {
		t.Fatal(err)
	}
	second, err := dialKeep(ts, tok)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	closedWith(t, first, "4004", "the old session of the room device")
	eventually(t, 2*time.Second, func() string {
		ps := other.Participants()
		if _, ok := ps[first.Self.ID]; ok || len(ps) != 1 {
			return fmt.Sprintf("the chair sees %d participants (old one listed: %v), want only the new session", len(ps), ok)
		}
		return ""
	})
}

func dialKeep(ts *testServer, tok string) (*client.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return client.Dial(ctx, ts.ws, tok, client.Options{Loopback: true, Logger: logger()})
}
