package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cau-project/cau/api"
)

// TestBadInput: malformed requests get a clear JSON error with the right status.
func TestBadInput(t *testing.T) {
	e := newEnv(t, boltStore(t), exampleTree(t, "four-level.yaml"))
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
