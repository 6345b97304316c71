package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/rooms"
)

// TestTwoNodesOnRedis: two API nodes share one Redis store: what one schedules the other
// sees and refuses to double-book, and a kiosk may ask either for its join token.
func TestTwoNodesOnRedis(t *testing.T) {
	store := redisStore(t)
	tree := exampleTree(t, "gia-lai.yaml")
	a := newEnv(t, store, tree)
	b := newEnv(t, store, tree)

	dev := a.addEndpoint("room-c01", "gl-d01-c01", rooms.KindRoom)
	m := a.schedule(map[string]any{"id": "toan-tinh", "title": "Hội nghị toàn tỉnh", "select": map[string]any{"root": "gl"},
		"start": at(base.Add(time.Hour)), "end": at(base.Add(3 * time.Hour))})
	if m.SiteCount != 258 {
		t.Fatalf("whole province: %d sites", m.SiteCount)
	}
	r := b.do("POST", "/api/v1/meetings", adminToken(t), map[string]any{"title": "Họp xã", "sites": []string{"gl-d01-c01"},
		"start": at(base.Add(2 * time.Hour)), "end": at(base.Add(4 * time.Hour))})
	if r.status != 409 || !strings.Contains(string(r.body), "toan-tinh") {
		t.Fatalf("conflict across nodes: %d %s", r.status, r.body)
	}

	b.clock.Set(base.Add(30 * time.Minute))
	var jt struct {
		Token string `json:"token"`
	}
	b.must(200, "POST", "/api/v1/endpoints/room-c01/join-token", dev, nil).decode(t, &jt)
	c, err := testKeys.Verify(jt.Token, auth.UseJoin)
	if err != nil || c.Meeting != "toan-tinh" || c.Role != auth.RoleRoom {
		t.Fatalf("join token from node b: %+v %v", c, err)
	}

	// The roll call reads the attendance written by any node.
	if err := store.AppendAttendance(context.Background(), rooms.AttendanceEvent{Time: base.Add(40 * time.Minute),
		MeetingID: "toan-tinh", Site: "gl-d01-c01", Endpoint: "room-c01", Kind: rooms.EventConnected}); err != nil {
		t.Fatal(err)
	}
	var rc struct {
		Summary struct{ Sites, Attended int }
	}
	a.must(200, "GET", "/api/v1/meetings/toan-tinh/rollcall", adminToken(t), nil).decode(t, &rc)
	if rc.Summary.Sites != 258 || rc.Summary.Attended != 1 {
		t.Errorf("roll call: %+v", rc.Summary)
	}

	// Both nodes' audit entries land in the one log.
	var audit struct {
		Entries []rooms.AuditEntry `json:"entries"`
	}
	a.must(200, "GET", "/api/v1/audit", adminToken(t), nil).decode(t, &audit)
	var actions []string
	for _, e := range audit.Entries {
		actions = append(actions, e.Action)
	}
	if got := strings.Join(actions, ","); got != "create_endpoint,device_token,schedule,join_token" {
		t.Errorf("audit actions %s", got)
	}
}
