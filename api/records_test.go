package api_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
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
	"github.com/cau-project/cau/rooms/store/bolt"
)

func TestRollCall(t *testing.T) {
	e := fourLevelEnv(t)
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
	e := fourLevelEnv(t)
	e.addEndpoint("room-tw", "tw", rooms.KindRoom)
	e.schedule(map[string]any{"id": "m1", "title": "Họp", "sites": []string{"tw"}, "start": at(base.Add(time.Hour)), "end": at(base.Add(2 * time.Hour))})
	e.must(200, "POST", "/api/v1/meetings/m1/cancel", adminToken(t), nil)
	// The log names who acted by the token's subject, or role@site without one, never
	// by a display name.
	tech := token(t, auth.Claims{Role: auth.RoleTechnician, Name: "Kỹ thuật Bình", Site: "tw"})
	e.must(403, "POST", "/api/v1/meetings/m1/end", tech, nil)
	e.must(403, "GET", "/api/v1/audit", tech, nil)

	var out struct {
		Entries []rooms.AuditEntry `json:"entries"`
	}
	e.must(200, "GET", "/api/v1/audit", adminToken(t), nil).decode(t, &out)
	var got []string
	for _, x := range out.Entries {
		got = append(got, string(x.Role)+" "+x.Actor+" "+x.Site+" "+x.Action+" "+x.Target)
	}
	want := []string{
		"admin op-an  create_endpoint room-tw",
		"admin op-an  device_token room-tw",
		"admin op-an  schedule m1",
		"admin op-an  cancel m1",
		"technician technician@tw tw end m1",
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

// TestBadInput: malformed requests get a clear JSON error with the right status.
func TestBadInput(t *testing.T) {
	e := fourLevelEnv(t)
	adm := adminToken(t)
	huge := `{"title":"` + strings.Repeat("x", api.MaxBodyBytes) + `"}`
	cases := []struct {
		name, method, path, body string
		status                   int
		code, contains           string
	}{
		{"malformed", "POST", "/api/v1/meetings", `{"title":`, 400, "bad_request", "JSON"},
		{"not an object", "POST", "/api/v1/meetings", `[1,2]`, 400, "bad_request", ""},
		{"unknown field", "POST", "/api/v1/meetings", `{"titel":"x"}`, 400, "bad_request", "titel"},
		{"wrong type", "POST", "/api/v1/meetings", `{"title":7}`, 400, "bad_request", "title"},
		{"empty", "POST", "/api/v1/endpoints", ``, 400, "bad_request", "empty"},
		{"two values", "POST", "/api/v1/endpoints", `{"id":"a","site":"tw"}{"id":"b"}`, 400, "bad_request", "trailing"},
		{"trailing junk", "POST", "/api/v1/endpoints", `{"id":"a","site":"tw"} x`, 400, "bad_request", "trailing"},
		{"bad select", "POST", "/api/v1/meetings", `{"title":"x","select":"tw"}`, 400, "bad_request", "select"},
		{"select unknown field", "POST", "/api/v1/meetings", `{"title":"x","select":{"root":"tw","lvls":[]}}`, 400, "bad_request", "lvls"},
		{"too large", "POST", "/api/v1/meetings", huge, 413, "too_large", "larger"},
		{"unknown path", "GET", "/api/v1/nope", ``, 404, "not_found", "/api/v1/nope"},
		{"nested unknown path", "GET", "/api/v1/meetings/m1/floor", ``, 404, "not_found", ""},
		{"wrong method", "DELETE", "/api/v1/meetings", ``, 405, "method_not_allowed", "GET, POST"},
		{"unknown meeting", "GET", "/api/v1/meetings/%E1%BB%8D", ``, 404, "not_found", ""},
		{"bad limit", "GET", "/api/v1/audit?limit=x", ``, 400, "bad_request", "limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(c.method, c.path, adm, c.body)
			if r.status != c.status || r.errorCode() != c.code || !strings.Contains(string(r.body), c.contains) {
				t.Errorf("%d %s, want %d %s mentioning %q", r.status, r.body, c.status, c.code, c.contains)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
	// A non-JSON content type is refused before the body is read.
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/endpoints", strings.NewReader("id=a"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+adm)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 415 || !bytes.Contains(b, []byte("unsupported_media_type")) {
		t.Errorf("form body: %d %s", res.StatusCode, b)
	}
	if got := e.do("DELETE", "/api/v1/meetings", adm, nil).header.Get("Allow"); got != "GET, POST" {
		t.Errorf("Allow %q", got)
	}
}

// FuzzMutations sends arbitrary bodies to every route that reads one: the answer is
// never a 5xx and always a JSON value.
func FuzzMutations(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"title":"x","sites":["tw"],"start":"2026-03-05T08:00:00+07:00","end":"2026-03-05T09:00:00+07:00"}`,
		`{"select":[{"root":"tw","levels":["commune"],"depth":-3,"exclude":["tw"]}],"title":"y","start":"2030-01-01T00:00","end":"2030-01-01T01:00"}`,
		`{"sites":[{"id":"a","level":"central"},{"id":"b","parent":"a","level":"commune"}]}`,
		`{"id":"e","site":"tw","kind":"room","name":"\u0000"}`, `null`, `"str"`, `{"test_window":"9999999h"}`,
		`{"start":"9999-12-31T23:59:59+07:00","end":"0001-01-01T00:00:00Z","title":"t","sites":["tw"]}`,
	} {
		f.Add(s)
	}
	store := boltStore(f)
	tree := exampleTree(f, "four-level.yaml")
	a := api.New(api.Config{Store: store, Tree: tree, Keys: testKeys, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	adm := adminToken(f)
	routes := [][2]string{
		{"POST", "/api/v1/meetings"}, {"PATCH", "/api/v1/meetings/m1"}, {"POST", "/api/v1/endpoints"},
		{"PUT", "/api/v1/endpoints/e1"}, {"POST", "/api/v1/sites"}, {"PUT", "/api/v1/sites/tw"},
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, rt := range routes {
			req := httptest.NewRequest(rt[0], rt[1], strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+adm)
			rec := httptest.NewRecorder()
			a.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("%s %s with %q: %d %s", rt[0], rt[1], body, rec.Code, rec.Body)
			}
			if !json.Valid(rec.Body.Bytes()) && rec.Code != http.StatusNoContent {
				t.Fatalf("%s %s with %q: not JSON: %s", rt[0], rt[1], body, rec.Body)
			}
		}
	})
}

// crashBeforeAudit is a store whose separate audit appends never land, as when the
// process dies between a change and its audit entry.
type crashBeforeAudit struct{ rooms.Store }

func (crashBeforeAudit) AppendAudit(context.Context, rooms.AuditEntry) error {
	return errors.New("the process died before the audit entry was written")
}

// TestAuditWrittenWithTheChange: the API writes an audit entry in the same store
// transaction as the change it records, so no change is ever made unaudited; a change
// that fails leaves no entry.
func TestAuditWrittenWithTheChange(t *testing.T) {
	store := boltStore(t)
	e := newEnv(t, crashBeforeAudit{store}, exampleTree(t, "four-level.yaml"))
	adm := adminToken(t)
	e.must(201, "POST", "/api/v1/endpoints", adm, map[string]any{"id": "room-x", "name": "X", "site": "tw", "kind": "room"})
	e.must(200, "PUT", "/api/v1/endpoints/room-x", adm, map[string]any{"name": "X2", "site": "tw", "kind": "room"})
	e.must(204, "DELETE", "/api/v1/endpoints/room-x", adm, nil)
	e.must(404, "DELETE", "/api/v1/endpoints/room-x", adm, nil)
	e.must(201, "POST", "/api/v1/sites", adm, map[string]any{"id": "qnam-new", "name": "Mới", "level": "district", "parent": "qnam"})
	e.must(204, "DELETE", "/api/v1/sites/qnam-new", adm, nil)
	e.schedule(map[string]any{"id": "m1", "title": "Họp", "sites": []string{"tw"}, "start": at(base.Add(time.Hour)), "end": at(base.Add(2 * time.Hour))})
	e.must(200, "POST", "/api/v1/meetings/m1/cancel", adm, nil)
	got, err := store.Audit(context.Background(), rooms.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var log []string
	for _, x := range got {
		log = append(log, x.Actor+" "+x.Action+" "+x.Target)
	}
	want := []string{"op-an create_endpoint room-x", "op-an update_endpoint room-x", "op-an delete_endpoint room-x",
		"op-an create_site qnam-new", "op-an delete_site qnam-new", "op-an schedule m1", "op-an cancel m1"}
	if !slices.Equal(log, want) {
		t.Fatalf("audit log:\n%s\nwant:\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
	}
}
