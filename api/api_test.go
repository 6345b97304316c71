package api_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/api"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/httpapi"
	"github.com/cau-project/cau/rooms"
)

func TestSites(t *testing.T) {
	e := fourLevelEnv(t)
	adm := adminToken(t)

	var list struct {
		Count  int            `json:"count"`
		Root   string         `json:"root"`
		Levels map[string]int `json:"levels"`
		Sites  []struct {
			ID, Name, Level, Parent string
			Depth                   int
		} `json:"sites"`
	}
	e.must(200, "GET", "/api/v1/sites", adm, nil).decode(t, &list)
	if list.Count != 28 || list.Root != "tw" || list.Levels["commune"] != 19 || len(list.Sites) != 28 {
		t.Fatalf("list: count %d root %q levels %v, %d sites", list.Count, list.Root, list.Levels, len(list.Sites))
	}
	if s := list.Sites[3]; s.ID != "qnam-psn-c01" || s.Depth != 3 || s.Parent != "qnam-psn" {
		t.Errorf("preorder: 4th site %+v", s)
	}

	var tree struct {
		Tree struct {
			ID       string `json:"id"`
			Children []struct {
				ID       string `json:"id"`
				Children []any  `json:"children"`
			} `json:"children"`
		} `json:"tree"`
	}
	e.must(200, "GET", "/api/v1/sites?view=tree", adm, nil).decode(t, &tree)
	if tree.Tree.ID != "tw" || len(tree.Tree.Children) != 2 || len(tree.Tree.Children[0].Children) != 3 {
		t.Errorf("tree view: %+v", tree.Tree)
	}
	e.must(400, "GET", "/api/v1/sites?view=graph", adm, nil)

	var one struct {
		ID          string   `json:"id"`
		Ancestors   []string `json:"ancestors"`
		Children    []string `json:"children"`
		SubtreeSize int      `json:"subtree_size"`
	}
	e.must(200, "GET", "/api/v1/sites/qnam-psn", adm, nil).decode(t, &one)
	if !slices.Equal(one.Ancestors, []string{"qnam", "tw"}) || len(one.Children) != 4 || one.SubtreeSize != 5 {
		t.Errorf("site: %+v", one)
	}
	e.must(404, "GET", "/api/v1/sites/nowhere", adm, nil)

	// Add a commune, rename it, move it, delete it.
	e.must(201, "POST", "/api/v1/sites", adm, rooms.Site{ID: "qnam-psn-c05", Name: "Xã Mới", Level: "commune", Parent: "qnam-psn"})
	if r := e.do("POST", "/api/v1/sites", adm, rooms.Site{ID: "qnam-psn-c05", Name: "again", Level: "commune", Parent: "qnam-psn"}); r.status != 409 || r.errorCode() != "exists" {
		t.Errorf("duplicate site: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/api/v1/sites", adm, rooms.Site{ID: "x", Name: "X", Level: "commune", Parent: "nowhere"}); r.status != 422 || !strings.Contains(string(r.body), "unknown parent") {
		t.Errorf("unknown parent: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/api/v1/sites", adm, rooms.Site{ID: "x", Name: "X", Level: "province", Parent: "qnam-psn-c01"}); r.status != 422 {
		t.Errorf("province under a commune: %d %s", r.status, r.body)
	}
	e.must(200, "PUT", "/api/v1/sites/qnam-psn-c05", adm, rooms.Site{Name: "Xã Mới Lập", Level: "commune", Parent: "qnam-tk"})
	if got := e.api.Tree().Name("qnam-psn-c05"); got != "Xã Mới Lập" || !slices.Contains(e.api.Tree().Children("qnam-tk"), "qnam-psn-c05") {
		t.Errorf("after update: name %q, children of qnam-tk %v", got, e.api.Tree().Children("qnam-tk"))
	}
	if r := e.do("PUT", "/api/v1/sites/qnam", adm, rooms.Site{Name: "Q", Level: "province", Parent: "qnam-psn"}); r.status != 422 || !strings.Contains(string(r.body), "cycle") {
		t.Errorf("cycle: %d %s", r.status, r.body)
	}
	if r := e.do("PUT", "/api/v1/sites/qnam", adm, rooms.Site{ID: "other", Name: "Q", Level: "province", Parent: "tw"}); r.status != 422 {
		t.Errorf("id change: %d %s", r.status, r.body)
	}
	if r := e.do("DELETE", "/api/v1/sites/qnam-psn", adm, nil); r.status != 409 || r.errorCode() != "in_use" {
		t.Errorf("delete a site with children: %d %s", r.status, r.body)
	}
	e.must(204, "DELETE", "/api/v1/sites/qnam-psn-c05", adm, nil)
	e.must(404, "DELETE", "/api/v1/sites/qnam-psn-c05", adm, nil)

	// An endpoint pins its site.
	e.addEndpoint("room-c01", "qnam-psn-c01", rooms.KindRoom)
	if r := e.do("DELETE", "/api/v1/sites/qnam-psn-c01", adm, nil); r.status != 409 || !strings.Contains(string(r.body), "room-c01") {
		t.Errorf("delete a site with an endpoint: %d %s", r.status, r.body)
	}

	// Replace the whole tree: an invalid one lists its problems; one without the
	// endpoint's site is refused; a good one is saved and used.
	bad := []rooms.Site{{ID: "a", Level: "province"}, {ID: "b", Level: "commune", Parent: "zz"}, {ID: "a", Level: "commune"}}
	if r := e.do("PUT", "/api/v1/sites", adm, map[string]any{"sites": bad}); r.status != 422 ||
		!strings.Contains(string(r.body), "unknown parent") || !strings.Contains(string(r.body), "duplicate") {
		t.Errorf("invalid tree: %d %s", r.status, r.body)
	}
	gl := exampleTree(t, "gia-lai.yaml")
	if r := e.do("PUT", "/api/v1/sites", adm, map[string]any{"sites": gl.Sites()}); r.status != 409 || r.errorCode() != "in_use" {
		t.Errorf("tree without an endpoint's site: %d %s", r.status, r.body)
	}
	e.must(204, "DELETE", "/api/v1/endpoints/room-c01", adm, nil)
	var sum struct {
		Count int    `json:"count"`
		Root  string `json:"root"`
	}
	e.must(200, "PUT", "/api/v1/sites", adm, map[string]any{"sites": gl.Sites()}).decode(t, &sum)
	if sum.Count != 258 || sum.Root != "gl" || e.api.Tree().Len() != 258 {
		t.Errorf("replace: %+v, API tree %d sites", sum, e.api.Tree().Len())
	}
	saved, err := rooms.StoredTree(context.Background(), e.store)
	if err != nil || saved.Len() != 258 {
		t.Fatalf("stored tree: %v", err)
	}
}

func TestEndpointsAndDeviceTokens(t *testing.T) {
	e := fourLevelEnv(t)
	adm := adminToken(t)
	var created struct {
		Endpoint    rooms.Endpoint `json:"endpoint"`
		DeviceToken string         `json:"device_token"`
		Expires     time.Time      `json:"device_token_expires_at"`
		KioskPath   string         `json:"kiosk_path"`
	}
	r := e.must(201, "POST", "/api/v1/endpoints", adm, map[string]any{"id": "room-c01", "name": "Phòng họp xã Khâm Đức", "site": "qnam-psn-c01"})
	r.decode(t, &created)
	if created.Endpoint.Kind != rooms.KindRoom || created.DeviceToken == "" || !strings.HasPrefix(created.KioskPath, "/room/room-c01?token=") {
		t.Fatalf("created: %s", r.body)
	}
	if loc := r.header.Get("Location"); loc != "/api/v1/endpoints/room-c01" {
		t.Errorf("Location %q", loc)
	}
	c, err := testKeys.Verify(created.DeviceToken, auth.UseKiosk)
	if err != nil {
		t.Fatal(err)
	}
	if c.Role != auth.RoleRoom || c.Endpoint != "room-c01" || c.Site != "qnam-psn-c01" || c.Meeting != "" {
		t.Errorf("device token claims %+v", c)
	}
	if ttl := time.Until(c.ExpiresAt.Time); ttl < 364*24*time.Hour {
		t.Errorf("device token lasts %v, want about a year", ttl)
	}
	if _, off := created.Expires.Zone(); off != 7*3600 {
		t.Errorf("expiry %v not in Vietnam time", created.Expires)
	}

	// A laptop gets no token; an id is generated when none is given.
	var lap struct {
		Endpoint    rooms.Endpoint `json:"endpoint"`
		DeviceToken string         `json:"device_token"`
	}
	e.must(201, "POST", "/api/v1/endpoints", adm, map[string]any{"name": "Máy xách tay", "site": "tw", "kind": "laptop"}).decode(t, &lap)
	if lap.DeviceToken != "" || !strings.HasPrefix(lap.Endpoint.ID, "ep-") {
		t.Errorf("laptop: %+v", lap)
	}
	e.must(409, "POST", "/api/v1/endpoints", adm, map[string]any{"id": "room-c01", "site": "tw"})
	for _, bad := range []map[string]any{
		{"id": "x", "site": "nowhere"},
		{"id": "x", "site": "tw", "kind": "phone"},
		{"id": "x"},
	} {
		if r := e.do("POST", "/api/v1/endpoints", adm, bad); r.status != 422 || r.errorCode() != "invalid" {
			t.Errorf("%v: %d %s", bad, r.status, r.body)
		}
	}

	// The device reads itself, not others; it cannot change itself.
	dev := created.DeviceToken
	var got rooms.Endpoint
	e.must(200, "GET", "/api/v1/endpoints/room-c01", dev, nil).decode(t, &got)
	if got.Name != "Phòng họp xã Khâm Đức" {
		t.Errorf("endpoint %+v", got)
	}
	e.must(403, "GET", "/api/v1/endpoints/"+lap.Endpoint.ID, dev, nil)
	e.must(403, "PUT", "/api/v1/endpoints/room-c01", dev, map[string]any{"name": "mine", "site": "tw", "kind": "room"})

	// Update, list with filters, re-issue, delete.
	e.must(200, "PUT", "/api/v1/endpoints/room-c01", adm, map[string]any{"name": "Phòng họp mới", "site": "qnam-psn-c02", "kind": "room"})
	var list struct {
		Endpoints []rooms.Endpoint `json:"endpoints"`
	}
	e.must(200, "GET", "/api/v1/endpoints?kind=room", adm, nil).decode(t, &list)
	if len(list.Endpoints) != 1 || list.Endpoints[0].Site != "qnam-psn-c02" {
		t.Errorf("rooms: %+v", list.Endpoints)
	}
	e.must(200, "GET", "/api/v1/endpoints?site=tw", adm, nil).decode(t, &list)
	if len(list.Endpoints) != 1 || list.Endpoints[0].Kind != rooms.KindLaptop {
		t.Errorf("at tw: %+v", list.Endpoints)
	}
	e.must(404, "PUT", "/api/v1/endpoints/nope", adm, map[string]any{"name": "n", "site": "tw", "kind": "room"})
	e.must(200, "POST", "/api/v1/endpoints/room-c01/device-token", adm, nil)
	e.must(422, "POST", "/api/v1/endpoints/"+lap.Endpoint.ID+"/device-token", adm, nil)
	e.must(204, "DELETE", "/api/v1/endpoints/room-c01", adm, nil)
	// A deleted endpoint's device token opens nothing any more.
	e.must(404, "GET", "/api/v1/endpoints/room-c01/next", dev, nil)
	e.must(404, "POST", "/api/v1/endpoints/room-c01/join-token", dev, nil)
}

func TestScheduleSubtreeConflictsAndLifecycle(t *testing.T) {
	e := newEnv(t, boltStore(t), exampleTree(t, "gia-lai.yaml"))
	adm := adminToken(t)
	e.addEndpoint("room-gl", "gl", rooms.KindRoom)
	e.addEndpoint("room-c01", "gl-d01-c01", rooms.KindRoom)

	// "The province and all its communes", given in Vietnam time without an offset for
	// the start and in UTC for the end: both come back in +07:00.
	m := e.schedule(map[string]any{
		"id": "giao-ban-t3", "title": "Giao ban tháng 3", "select": map[string]any{"root": "gl", "levels": []string{"commune"}},
		"start": "2026-03-02T14:00", "end": "2026-03-02T09:00:00Z", "mode": "training",
	})
	if m.SiteCount != 221 || len(m.Sites) != 221 || m.Sites[0] != "gl" || m.ChairSite != "gl" {
		t.Fatalf("subtree selection: %d sites (first %q), chair %q", m.SiteCount, m.Sites[0], m.ChairSite)
	}
	if got := m.Start.Format(time.RFC3339); got != "2026-03-02T14:00:00+07:00" {
		t.Errorf("start %s", got)
	}
	if got := m.End.Format(time.RFC3339); got != "2026-03-02T16:00:00+07:00" {
		t.Errorf("end %s", got)
	}
	if got := m.ConnectAt.Format(time.RFC3339); got != "2026-03-02T13:00:00+07:00" || m.TestWindow != "1h0m0s" {
		t.Errorf("connect at %s, test window %s", got, m.TestWindow)
	}
	if m.State != "scheduled" || m.Status != "scheduled" || m.Mode != "training" {
		t.Errorf("state %s status %s mode %s", m.State, m.Status, m.Mode)
	}

	// The same rooms in an overlapping window (test window included): 409 naming the
	// other meeting; a meeting without room sites is fine.
	r := e.do("POST", "/api/v1/meetings", adm, map[string]any{"title": "Họp khác", "sites": []string{"gl-d01", "gl-d01-c01"},
		"start": "2026-03-02T16:30:00+07:00", "end": "2026-03-02T17:30:00+07:00"})
	if r.status != 409 || r.errorCode() != "conflict" || !strings.Contains(string(r.body), "giao-ban-t3") ||
		!strings.Contains(string(r.body), "gl-d01-c01") {
		t.Fatalf("conflict: %d %s", r.status, r.body)
	}
	other := e.schedule(map[string]any{"title": "Họp huyện", "select": map[string]any{"root": "gl-d02"},
		"start": "2026-03-02T14:00:00+07:00", "end": "2026-03-02T15:00:00+07:00", "test_window": "15m"})
	if other.SiteCount < 2 || other.TestWindow != "15m0s" || !strings.HasPrefix(other.ID, "m-") {
		t.Errorf("other meeting: %+v", other)
	}

	// Reschedule keeps what is not given; list and filters; get.
	var moved httpapi.Meeting
	e.must(200, "PATCH", "/api/v1/meetings/giao-ban-t3", adm, map[string]any{"start": "2026-03-03T08:00:00+07:00",
		"end": "2026-03-03T10:00:00+07:00"}).decode(t, &moved)
	if moved.SiteCount != 221 || moved.Title != "Giao ban tháng 3" || moved.Mode != "training" {
		t.Errorf("rescheduled: %+v", moved)
	}
	e.schedule(map[string]any{"title": "Họp khác", "sites": []string{"gl-d01", "gl-d01-c01"},
		"start": "2026-03-02T16:30:00+07:00", "end": "2026-03-02T17:30:00+07:00"})
	var list struct {
		Meetings []httpapi.Meeting `json:"meetings"`
	}
	e.must(200, "GET", "/api/v1/meetings", adm, nil).decode(t, &list)
	if len(list.Meetings) != 3 || list.Meetings[0].Sites != nil {
		t.Errorf("list: %d meetings (sites listed: %v)", len(list.Meetings), list.Meetings[0].Sites)
	}
	e.must(200, "GET", "/api/v1/meetings?site=gl-d01-c01", adm, nil).decode(t, &list)
	if len(list.Meetings) != 2 {
		t.Errorf("meetings at gl-d01-c01: %d", len(list.Meetings))
	}
	e.must(200, "GET", "/api/v1/meetings?to=2026-03-03T00:00:00%2B07:00", adm, nil).decode(t, &list)
	if len(list.Meetings) != 2 {
		t.Errorf("meetings starting before 3 March: %d", len(list.Meetings))
	}
	e.must(400, "GET", "/api/v1/meetings?from=yesterday", adm, nil)
	var got httpapi.Meeting
	e.must(200, "GET", "/api/v1/meetings/giao-ban-t3", adm, nil).decode(t, &got)
	if len(got.Sites) != 221 {
		t.Errorf("get: %d sites", len(got.Sites))
	}

	// Live, ended, cancelled.
	e.clock.Set(time.Date(2026, 3, 3, 8, 30, 0, 0, rooms.Zone()))
	e.must(200, "GET", "/api/v1/meetings/giao-ban-t3", adm, nil).decode(t, &got)
	if got.Status != "live" || got.State != "scheduled" {
		t.Errorf("during: state %s status %s", got.State, got.Status)
	}
	e.must(200, "POST", "/api/v1/meetings/giao-ban-t3/end", adm, nil).decode(t, &got)
	if got.State != "ended" || got.End.Format(time.RFC3339) != "2026-03-03T08:30:00+07:00" {
		t.Errorf("ended: %+v", got)
	}
	if r := e.do("POST", "/api/v1/meetings/giao-ban-t3/cancel", adm, nil); r.status != 409 || r.errorCode() != "meeting_over" {
		t.Errorf("cancel an ended meeting: %d %s", r.status, r.body)
	}
	if r := e.do("PATCH", "/api/v1/meetings/giao-ban-t3", adm, map[string]any{"title": "x"}); r.status != 409 || r.errorCode() != "meeting_over" {
		t.Errorf("reschedule an ended meeting: %d %s", r.status, r.body)
	}
	e.must(200, "POST", "/api/v1/meetings/"+other.ID+"/cancel", adm, nil).decode(t, &got)
	if got.State != "cancelled" {
		t.Errorf("cancelled: %+v", got)
	}
	e.must(404, "POST", "/api/v1/meetings/nope/end", adm, nil)

	// Validation.
	for name, body := range map[string]map[string]any{
		"no title":        {"sites": []string{"gl"}, "start": "2026-03-05T08:00:00+07:00", "end": "2026-03-05T09:00:00+07:00"},
		"end first":       {"title": "x", "sites": []string{"gl"}, "start": "2026-03-05T09:00:00+07:00", "end": "2026-03-05T08:00:00+07:00"},
		"bad time":        {"title": "x", "sites": []string{"gl"}, "start": "tomorrow", "end": "2026-03-05T08:00:00+07:00"},
		"unknown site":    {"title": "x", "sites": []string{"hn"}, "start": "2026-03-05T08:00:00+07:00", "end": "2026-03-05T09:00:00+07:00"},
		"unknown root":    {"title": "x", "select": map[string]any{"root": "hn"}, "start": "2026-03-05T08:00:00+07:00", "end": "2026-03-05T09:00:00+07:00"},
		"no sites":        {"title": "x", "start": "2026-03-05T08:00:00+07:00", "end": "2026-03-05T09:00:00+07:00"},
		"in the past":     {"title": "x", "sites": []string{"gl"}, "start": "2026-01-05T08:00:00+07:00", "end": "2026-01-05T09:00:00+07:00"},
		"bad mode":        {"title": "x", "sites": []string{"gl"}, "mode": "lecture", "start": "2026-03-05T08:00:00+07:00", "end": "2026-03-05T09:00:00+07:00"},
		"bad window":      {"title": "x", "sites": []string{"gl"}, "test_window": "-5m", "start": "2026-03-05T08:00:00+07:00", "end": "2026-03-05T09:00:00+07:00"},
		"too long":        {"title": "x", "sites": []string{"gl"}, "start": "2026-03-05T08:00:00+07:00", "end": "2026-03-07T09:00:00+07:00"},
		"id with space":   {"id": "a b", "title": "x", "sites": []string{"gl"}, "start": "2026-03-05T08:00:00+07:00", "end": "2026-03-05T09:00:00+07:00"},
		"id with slash":   {"id": "a/b", "title": "x", "sites": []string{"gl"}, "start": "2026-03-05T08:00:00+07:00", "end": "2026-03-05T09:00:00+07:00"},
		"unknown level":   {"title": "x", "select": map[string]any{"root": "gl", "levels": []string{"village"}}, "start": "2026-03-05T08:00:00+07:00", "end": "2026-03-05T09:00:00+07:00"},
		"chair elsewhere": {"title": "x", "chair_site": "nowhere", "sites": []string{"gl"}, "start": "2026-03-05T08:00:00+07:00", "end": "2026-03-05T09:00:00+07:00"},
	} {
		r := e.do("POST", "/api/v1/meetings", adm, body)
		if r.status != 422 {
			t.Errorf("%s: %d %s, want 422", name, r.status, r.body)
		}
	}
	if r := e.do("POST", "/api/v1/meetings", adm, map[string]any{"title": "Dup", "id": "giao-ban-t3", "sites": []string{"gl-d03"},
		"start": "2026-03-05T08:00:00+07:00", "end": "2026-03-05T09:00:00+07:00"}); r.status != 409 || r.errorCode() != "exists" {
		t.Errorf("duplicate id: %d %s", r.status, r.body)
	}
	// A list of selections: two districts with their communes.
	two := e.schedule(map[string]any{"title": "Hai huyện", "select": []map[string]any{{"root": "gl-d03"}, {"root": "gl-d04"}},
		"start": "2026-03-06T08:00:00+07:00", "end": "2026-03-06T09:00:00+07:00"})
	if two.ChairSite != "gl-d03" || !slices.Contains(two.Sites, "gl-d04") {
		t.Errorf("two selections: chair %s, sites %v", two.ChairSite, two.Sites)
	}
}

func TestKioskPlanAndJoinToken(t *testing.T) {
	e := fourLevelEnv(t)
	dev := e.addEndpoint("room-c01", "qnam-psn-c01", rooms.KindRoom)
	otherDev := e.addEndpoint("room-c02", "qnam-psn-c02", rooms.KindRoom)

	type plan struct {
		Endpoint rooms.Endpoint `json:"endpoint"`
		Site     rooms.Site     `json:"site"`
		Now      time.Time      `json:"now"`
		Plan     *struct {
			Meeting      httpapi.Meeting `json:"meeting"`
			ConnectAt    time.Time       `json:"connect_at"`
			DisconnectAt time.Time       `json:"disconnect_at"`
			ConnectNow   bool            `json:"connect_now"`
		} `json:"plan"`
	}
	var p plan
	e.must(200, "GET", "/api/v1/endpoints/room-c01/next", dev, nil).decode(t, &p)
	if p.Plan != nil || p.Site.Name != "Thị trấn Khâm Đức" || !p.Now.Equal(base) {
		t.Fatalf("no meeting yet: %+v", p)
	}
	if r := e.do("POST", "/api/v1/endpoints/room-c01/join-token", dev, nil); r.status != 409 || r.errorCode() != "not_connectable" {
		t.Errorf("join token with nothing booked: %d %s", r.status, r.body)
	}

	// A province meeting at 09:00–10:00 with a 30-minute test window; c01 is in it.
	m := e.schedule(map[string]any{"id": "hop-tinh", "title": "Họp tỉnh", "select": map[string]any{"root": "qnam", "levels": []string{"commune"}},
		"start": at(base.Add(time.Hour)), "end": at(base.Add(2 * time.Hour)), "test_window": "30m"})
	e.must(200, "GET", "/api/v1/endpoints/room-c01/next", dev, nil).decode(t, &p)
	if p.Plan == nil || p.Plan.Meeting.ID != m.ID || p.Plan.ConnectNow || !p.Plan.ConnectAt.Equal(base.Add(30*time.Minute)) ||
		p.Plan.Meeting.Sites != nil {
		t.Fatalf("plan before the window: %+v", p.Plan)
	}
	if r := e.do("POST", "/api/v1/endpoints/room-c01/join-token", dev, nil); r.status != 409 ||
		!strings.Contains(string(r.body), "08:30") {
		t.Errorf("join token before the window: %d %s", r.status, r.body)
	}

	// In the test window: a join token for this meeting, this site, this endpoint.
	e.clock.Set(base.Add(45 * time.Minute))
	e.must(200, "GET", "/api/v1/endpoints/room-c01/next", dev, nil).decode(t, &p)
	if !p.Plan.ConnectNow || p.Plan.Meeting.Status != "testing" {
		t.Errorf("plan in the window: %+v", p.Plan)
	}
	var jt httpapi.JoinToken
	e.must(200, "POST", "/api/v1/endpoints/room-c01/join-token", dev, nil).decode(t, &jt)
	c, err := testKeys.Verify(jt.Token, auth.UseJoin)
	if err != nil {
		t.Fatal(err)
	}
	if c.Meeting != "hop-tinh" || c.Site != "qnam-psn-c01" || c.Role != auth.RoleRoom || c.Endpoint != "room-c01" {
		t.Errorf("join token claims %+v", c)
	}
	if ttl := c.ExpiresAt.Sub(c.IssuedAt.Time); ttl > api.DefaultJoinTokenTTL+time.Second {
		t.Errorf("join token lasts %v, want at most %v", ttl, api.DefaultJoinTokenTTL)
	}
	if !jt.ExpiresAt.Equal(e.clock.Now().Add(api.DefaultJoinTokenTTL)) || !strings.HasPrefix(jt.JoinPath, "/join/hop-tinh?autojoin=1&token=") {
		t.Errorf("join token answer: %+v", jt)
	}
	// The join token is for signaling only: it cannot mint its successor (a kiosk's
	// 15-minute token would otherwise renew itself forever) nor read the plan.
	e.must(401, "POST", "/api/v1/endpoints/room-c01/join-token", jt.Token, nil)
	e.must(401, "GET", "/api/v1/endpoints/room-c01/next", jt.Token, nil)
	// Another room's device cannot mint for this one; an admin can; a technician cannot.
	e.must(403, "POST", "/api/v1/endpoints/room-c01/join-token", otherDev, nil)
	e.must(200, "POST", "/api/v1/endpoints/room-c01/join-token", adminToken(t), nil)
	e.must(403, "POST", "/api/v1/endpoints/room-c01/join-token", token(t, auth.Claims{Role: auth.RoleTechnician}), nil)

	// Near the end the token does not outlive the meeting by more than a minute.
	e.clock.Set(base.Add(2*time.Hour - 2*time.Minute))
	e.must(200, "POST", "/api/v1/endpoints/room-c01/join-token", dev, nil).decode(t, &jt)
	if want := base.Add(2*time.Hour + time.Minute); !jt.ExpiresAt.Equal(want) {
		t.Errorf("late join token expires %v, want %v", jt.ExpiresAt, want)
	}
	// After the end, or once cancelled, nothing to join.
	e.clock.Set(base.Add(2 * time.Hour))
	e.must(409, "POST", "/api/v1/endpoints/room-c01/join-token", dev, nil)
	e.clock.Set(base.Add(45 * time.Minute))
	e.must(200, "POST", "/api/v1/meetings/hop-tinh/cancel", adminToken(t), nil)
	e.must(409, "POST", "/api/v1/endpoints/room-c01/join-token", dev, nil)
	e.must(200, "GET", "/api/v1/endpoints/room-c01/next", dev, nil).decode(t, &p)
	if p.Plan != nil {
		t.Errorf("plan after cancel: %+v", p.Plan)
	}
}

// TestTokens: missing, malformed, foreign, expired and rotated tokens.
func TestTokens(t *testing.T) {
	e := fourLevelEnv(t)
	expired, err := testKeys.Sign(auth.Claims{Use: auth.UseAPI, Role: auth.RoleAdmin}, -time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := auth.Keys{Current: []byte("someone-elses-key-0123456789abcdefgh")}.Sign(auth.Claims{Use: auth.UseAPI, Role: auth.RoleAdmin}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := auth.Keys{Current: []byte(oldKey)}.Sign(auth.Claims{Use: auth.UseAPI, Role: auth.RoleAdmin}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"none": "", "garbage": "not-a-jwt", "expired": expired, "foreign key": foreign} {
		r := e.do("GET", "/api/v1/sites", tok, nil)
		if r.status != 401 || r.errorCode() != "unauthorized" || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: %d %s %q", name, r.status, r.body, r.header.Get("WWW-Authenticate"))
		}
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/sites", nil)
	req.Header.Set("Authorization", "Basic YWRtaW46YWRtaW4=")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Errorf("basic auth: %d", res.StatusCode)
	}
	// A token signed with a previous key still works (key rotation).
	e.must(200, "GET", "/api/v1/sites", rotated, nil)
	var me struct {
		Role, Name string
	}
	e.must(200, "GET", "/api/v1/me", token(t, auth.Claims{Role: auth.RoleChair, Meeting: "m1", Name: "Chủ tọa"}), nil).decode(t, &me)
	if me.Role != "chair" || me.Name != "Chủ tọa" {
		t.Errorf("me: %+v", me)
	}
}

// TestNoStore: an API without a store answers 503, not a panic.
func TestNoStore(t *testing.T) {
	srv := httptest.NewServer(api.New(api.Config{Keys: testKeys}))
	defer srv.Close()
	res, err := http.Get(srv.URL + "/api/v1/sites")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 503 {
		t.Errorf("status %d, want 503", res.StatusCode)
	}
}

// TestMeetingJoinToken: an operator mints a join token for one site of a meeting on the
// terms signaling admits it (in the test window or live, a site of the meeting), with the
// role asked for; anything else is refused with the code that says why.
func TestMeetingJoinToken(t *testing.T) {
	e := fourLevelEnv(t)
	adm := adminToken(t)
	e.schedule(map[string]any{"id": "hop-tinh", "title": "Họp tỉnh", "select": map[string]any{"root": "qnam"},
		"start": at(base.Add(time.Hour)), "end": at(base.Add(2 * time.Hour)), "test_window": "30m"})
	path := "/api/v1/meetings/hop-tinh/join-token"
	c01 := map[string]any{"site": "qnam-psn-c01", "name": "Phòng họp Khâm Đức", "role": "room"}

	for _, c := range []struct {
		name, path string
		body       any
		status     int
		code       string
	}{
		{"before the test window", path, c01, 409, httpapi.CodeNotConnectable},
		{"no such meeting", "/api/v1/meetings/nope/join-token", c01, 404, httpapi.CodeNotFound},
	} {
		if r := e.do("POST", c.path, adm, c.body); r.status != c.status || r.errorCode() != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, r.status, r.body, c.status, c.code)
		}
	}

	e.clock.Set(base.Add(45 * time.Minute)) // in the test window
	for _, c := range []struct {
		name string
		body any
		code string
	}{
		{"a site not in the meeting", map[string]any{"site": "lc-sp"}, httpapi.CodeInvalid},
		{"no site", map[string]any{"role": "room"}, httpapi.CodeInvalid},
		{"a staff role", map[string]any{"site": "qnam", "role": "admin"}, httpapi.CodeInvalid},
		{"an unknown field", map[string]any{"site": "qnam", "meeting": "other"}, httpapi.CodeBadRequest},
	} {
		if r := e.do("POST", path, adm, c.body); r.errorCode() != c.code {
			t.Errorf("%s: %d %s, want code %s", c.name, r.status, r.body, c.code)
		}
	}
	var jt httpapi.JoinToken
	e.must(200, "POST", path, adm, c01).decode(t, &jt)
	claims, err := testKeys.Verify(jt.Token, auth.UseJoin)
	if err != nil {
		t.Fatal(err)
	}
	if claims.Meeting != "hop-tinh" || claims.Site != "qnam-psn-c01" || claims.Role != auth.RoleRoom ||
		claims.Name != "Phòng họp Khâm Đức" || claims.Endpoint != "" {
		t.Errorf("claims %+v", claims)
	}
	if jt.Meeting != "hop-tinh" || jt.Site != "qnam-psn-c01" || !strings.HasPrefix(jt.JoinPath, "/join/hop-tinh?autojoin=1&token=") ||
		!jt.ExpiresAt.Equal(e.clock.Now().Add(api.DefaultJoinTokenTTL)) {
		t.Errorf("answer %+v", jt)
	}
	e.must(200, "POST", path, adm, map[string]any{"site": "qnam"}).decode(t, &jt)
	if claims, _ = testKeys.Verify(jt.Token, auth.UseJoin); claims.Role != auth.RoleParticipant || claims.Name != "qnam" {
		t.Errorf("default role and name: %+v", claims)
	}
	if !strings.Contains(e.logs.String(), "join_token") {
		t.Error("no audit entry for the join token")
	}
}

// TestAdHocJoinToken: a server that opens ad hoc meetings (dev mode) mints tokens for a
// meeting the store does not have; one that does not answers 404.
func TestAdHocJoinToken(t *testing.T) {
	store := boltStore(t)
	srv := httptest.NewServer(api.New(api.Config{Store: store, Keys: testKeys, AdHocMeetings: true,
		Logger: slog.New(slog.DiscardHandler)}))
	t.Cleanup(srv.Close)
	e := &env{t: t, store: store, srv: srv}
	var jt httpapi.JoinToken
	e.must(200, "POST", "/api/v1/meetings/loadtest/join-token", adminToken(t),
		map[string]any{"site": "load-0001", "role": "chair"}).decode(t, &jt)
	if c, err := testKeys.Verify(jt.Token, auth.UseJoin); err != nil || c.Meeting != "loadtest" || c.Role != auth.RoleChair {
		t.Errorf("ad hoc token %+v, %v", c, err)
	}
	e.must(403, "POST", "/api/v1/meetings/loadtest/join-token", token(t, auth.Claims{Role: auth.RoleTechnician}),
		map[string]any{"site": "load-0001"})
}
