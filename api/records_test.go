package api_test

import (
	"context"
	"encoding/csv"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/httpapi"
	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/rooms/store/bolt"
)

func TestRollCall(t *testing.T) {
	e := newEnv(t, boltStore(t), exampleTree(t, "four-level.yaml"))
	m := e.schedule(map[string]any{"id": "m1", "title": "Họp, \"quý\" I", "select": map[string]any{"root": "qnam-psn"},
		"start": at(base.Add(time.Hour)), "end": at(base.Add(2 * time.Hour))})
	ctx := context.Background()
	start := base.Add(time.Hour)
	for _, ev := range []rooms.AttendanceEvent{
		{Time: start.Add(-10 * time.Minute), Site: "qnam-psn", Endpoint: "e1", Kind: rooms.EventConnected},
		{Time: start.Add(5 * time.Minute), Site: "qnam-psn-c01", Endpoint: "e2", Kind: rooms.EventConnected},
		{Time: start.Add(10 * time.Minute), Site: "qnam-psn-c01", Endpoint: "e2", Kind: rooms.EventGrade, Grade: rooms.GradePoor},
		{Time: start.Add(20 * time.Minute), Site: "qnam-psn-c01", Endpoint: "e2", Kind: rooms.EventDisconnected},
		{Time: start.Add(25 * time.Minute), Site: "qnam-psn-c01", Endpoint: "e2", Kind: rooms.EventConnected},
	} {
		ev.MeetingID = m.ID
		if err := e.store.AppendAttendance(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Set(start.Add(30 * time.Minute))
	chair := token(t, auth.Claims{Role: auth.RoleChair, Meeting: "m1", Site: "qnam-psn"})
	var rc struct {
		AsOf    time.Time `json:"as_of"`
		Summary struct{ Sites, Attended, Online int }
		Records []struct {
			Site             string     `json:"site"`
			Name             string     `json:"name"`
			Attended         bool       `json:"attended"`
			FirstJoined      *time.Time `json:"first_joined"`
			ConnectedSeconds int64      `json:"connected_seconds"`
			Drops            int        `json:"drops"`
			WorstGrade       string     `json:"worst_grade"`
			Online           bool       `json:"online"`
		} `json:"records"`
	}
	e.must(200, "GET", "/api/v1/meetings/m1/rollcall", chair, nil).decode(t, &rc)
	if rc.Summary.Sites != 5 || rc.Summary.Attended != 2 || rc.Summary.Online != 2 || len(rc.Records) != 5 {
		t.Fatalf("summary %+v, %d records", rc.Summary, len(rc.Records))
	}
	c01 := rc.Records[1]
	if c01.Site != "qnam-psn-c01" || c01.Name != "Thị trấn Khâm Đức" || c01.Drops != 1 || c01.WorstGrade != "poor" ||
		c01.ConnectedSeconds != 20*60 || c01.FirstJoined == nil || c01.FirstJoined.Format(time.RFC3339) != "2026-03-02T09:05:00+07:00" {
		t.Errorf("c01 record %+v", c01)
	}
	if rc.Records[2].Attended || rc.Records[2].FirstJoined != nil {
		t.Errorf("absent site %+v", rc.Records[2])
	}

	// CSV, as a spreadsheet reads it.
	r := e.must(200, "GET", "/api/v1/meetings/m1/rollcall?format=csv", chair, nil)
	if ct := r.header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if cd := r.header.Get("Content-Disposition"); cd != `attachment; filename=rollcall-m1.csv` {
		t.Errorf("Content-Disposition %q", cd)
	}
	rows, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 6 || !slices.Equal(rows[0], rooms.RollCallCSVHeader) || rows[2][0] != "qnam-psn-c01" || rows[2][6] != "1200" {
		t.Errorf("CSV rows %q", rows)
	}
	e.must(400, "GET", "/api/v1/meetings/m1/rollcall?format=xml", chair, nil)
	// Another meeting's chair and this meeting's participants may not read it.
	e.must(403, "GET", "/api/v1/meetings/m1/rollcall", token(t, auth.Claims{Role: auth.RoleChair, Meeting: "m2"}), nil)
	e.must(403, "GET", "/api/v1/meetings/m1/rollcall", token(t, auth.Claims{Role: auth.RoleParticipant, Meeting: "m1"}), nil)
	e.must(404, "GET", "/api/v1/meetings/nope/rollcall", adminToken(t), nil)

	// After the end the open span stops at the end.
	e.clock.Set(base.Add(5 * time.Hour))
	e.must(200, "GET", "/api/v1/meetings/m1/rollcall", adminToken(t), nil).decode(t, &rc)
	if got := rc.Records[0].ConnectedSeconds; got != 70*60 || !rc.AsOf.Equal(base.Add(2*time.Hour)) {
		t.Errorf("after the end: chair site connected %d s, as of %v", got, rc.AsOf)
	}
}

func TestAuditLog(t *testing.T) {
	e := newEnv(t, boltStore(t), exampleTree(t, "four-level.yaml"))
	e.addEndpoint("room-tw", "tw", rooms.KindRoom)
	e.schedule(map[string]any{"id": "m1", "title": "Họp", "sites": []string{"tw"}, "start": at(base.Add(time.Hour)), "end": at(base.Add(2 * time.Hour))})
	e.must(200, "POST", "/api/v1/meetings/m1/cancel", adminToken(t), nil)
	tech := token(t, auth.Claims{Role: auth.RoleTechnician, Name: "Kỹ thuật Bình", Site: "tw"})
	e.must(403, "POST", "/api/v1/meetings/m1/end", tech, nil)
	e.must(403, "GET", "/api/v1/audit", tech, nil)

	var out struct {
		Entries []rooms.AuditEntry `json:"entries"`
	}
	e.must(200, "GET", "/api/v1/audit", adminToken(t), nil).decode(t, &out)
	var got []string
	for _, x := range out.Entries {
		got = append(got, string(x.Role)+" "+x.Actor+" "+x.Action+" "+x.Target)
	}
	want := []string{
		"admin Operator An create_endpoint room-tw",
		"admin Operator An device_token room-tw",
		"admin Operator An schedule m1",
		"admin Operator An cancel m1",
		"technician Kỹ thuật Bình end m1",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("audit log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if last := out.Entries[4]; !strings.HasPrefix(last.Detail, "denied") {
		t.Errorf("denied attempt detail %q", last.Detail)
	}
	if _, off := out.Entries[0].Time.Zone(); off != 7*3600 {
		t.Errorf("audit time %v not in Vietnam time", out.Entries[0].Time)
	}
	e.must(200, "GET", "/api/v1/audit?target=m1&limit=2", adminToken(t), nil).decode(t, &out)
	if len(out.Entries) != 2 || out.Entries[1].Action != "end" {
		t.Errorf("filtered: %+v", out.Entries)
	}
	e.must(400, "GET", "/api/v1/audit?limit=0", adminToken(t), nil)
	e.must(400, "GET", "/api/v1/audit?since=noon", adminToken(t), nil)
}

// TestRestartDurability: everything made through the API is there after the store is
// closed and opened again, the tree included.
func TestRestartDurability(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/cau.db"
	s1, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, s1, exampleTree(t, "four-level.yaml"))
	e.addEndpoint("room-tw", "tw", rooms.KindRoom)
	e.must(201, "POST", "/api/v1/sites", adminToken(t), rooms.Site{ID: "lc-new", Name: "Xã mới", Level: "commune", Parent: "lc-sp"})
	e.schedule(map[string]any{"id": "m1", "title": "Họp", "select": map[string]any{"root": "lc"}, "start": at(base.Add(time.Hour)), "end": at(base.Add(2 * time.Hour))})
	e.srv.Close()
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	s2, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s2.Close() })
	tree, err := rooms.StoredTree(context.Background(), s2)
	if err != nil {
		t.Fatal(err)
	}
	e2 := newEnv(t, s2, tree) // saving the stored tree again changes nothing
	var m httpapi.Meeting
	e2.must(200, "GET", "/api/v1/meetings/m1", adminToken(t), nil).decode(t, &m)
	if !slices.Contains(m.Sites, "lc-new") || m.SiteCount != 14 {
		t.Errorf("after restart: %d sites %v", m.SiteCount, m.Sites)
	}
	e2.must(200, "GET", "/api/v1/endpoints/room-tw", adminToken(t), nil)
	var audit struct {
		Entries []rooms.AuditEntry `json:"entries"`
	}
	e2.must(200, "GET", "/api/v1/audit", adminToken(t), nil).decode(t, &audit)
	if len(audit.Entries) != 4 {
		t.Errorf("audit after restart: %d entries", len(audit.Entries))
	}
}
