package monitor

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/httpapi"
	"github.com/cau-project/cau/web"
)

var testKeys = auth.Keys{Current: []byte("monitor-test-key-0123456789-0123456789")}

func tokenFor(t testing.TB, role auth.Role, ttl time.Duration) string {
	t.Helper()
	c := auth.Claims{Use: auth.UseAPI, Role: role, Name: "tester", Site: "central"}
	switch role {
	case auth.RoleRoom: // a room device's credential is a kiosk token
		c.Use, c.Endpoint = auth.UseKiosk, "room-central"
	case auth.RoleBridge:
		c.Use = auth.UseBridge
	}
	tok, err := testKeys.Sign(c, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func request(t *testing.T, h http.Handler, path, token string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestAPIAuth(t *testing.T) {
	h := newHarness(t, testTree(t))
	api := h.m.Handler(testKeys)
	other := auth.Keys{Current: []byte("another-key-0123456789-0123456789-0123")}
	forged, _ := other.Sign(auth.Claims{Use: auth.UseAPI, Role: auth.RoleAdmin}, time.Hour)
	for _, c := range []struct {
		name, token string
		status      int
	}{
		{"no token", "", 401},
		{"forged", forged, 401},
		{"expired", tokenFor(t, auth.RoleTechnician, -time.Minute), 401},
		{"participant", tokenFor(t, auth.RoleParticipant, time.Hour), 403},
		{"room (its kiosk token is no API token)", tokenFor(t, auth.RoleRoom, time.Hour), 401},
		{"chair", tokenFor(t, auth.RoleChair, time.Hour), 403},
		{"technician", tokenFor(t, auth.RoleTechnician, time.Hour), 200},
		{"admin", tokenFor(t, auth.RoleAdmin, time.Hour), 200},
	} {
		for _, path := range []string{"tree", "state", "alerts", "sites/c1"} {
			rec := request(t, api, APIPrefix+path, c.token)
			switch {
			case rec.Code != c.status:
				t.Errorf("%s: GET %s: %d, want %d (%s)", c.name, path, rec.Code, c.status, rec.Body)
			case rec.Header().Get("Cache-Control") != "no-store":
				t.Errorf("%s: %s is cacheable", c.name, path)
			case c.status >= 400:
				wantErrorBody(t, rec, c.status)
			}
		}
	}
	// Unknown paths and methods answer in the REST surface's one error shape too.
	rec := request(t, api, APIPrefix+"nothing", tokenFor(t, auth.RoleAdmin, time.Hour))
	wantErrorBody(t, rec, http.StatusNotFound)
	req := httptest.NewRequest(http.MethodPost, APIPrefix+"tree", nil)
	req.Header.Set("Authorization", "Bearer "+tokenFor(t, auth.RoleAdmin, time.Hour))
	rec = httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	wantErrorBody(t, rec, http.StatusMethodNotAllowed)
	// A token in the URL is not accepted: it would land in access logs.
	if rec := request(t, api, APIPrefix+"tree?token="+tokenFor(t, auth.RoleAdmin, time.Hour), ""); rec.Code != 401 {
		t.Errorf("token in the query: %d, want 401", rec.Code)
	}
}

func TestAPIData(t *testing.T) {
	h := newHarness(t, testTree(t))
	e := newEndpoint("a", "c1", "local")
	h.run(6, 8, e)
	api := h.m.Handler(testKeys)
	tok := tokenFor(t, auth.RoleTechnician, time.Hour)

	var tree struct {
		Root   string
		Levels []string
		Sites  [][4]string
	}
	if err := json.Unmarshal(request(t, api, APIPrefix+"tree", tok).Body.Bytes(), &tree); err != nil {
		t.Fatal(err)
	}
	if tree.Root != "central" || len(tree.Sites) != 6 || tree.Sites[3] != [4]string{"c1", "Xã 1", "commune", "d1"} ||
		strings.Join(tree.Levels, ",") != "central,province,district,commune" {
		t.Fatalf("tree %+v", tree)
	}

	var state streamEvent
	if err := json.Unmarshal(request(t, api, APIPrefix+"state", tok).Body.Bytes(), &state); err != nil {
		t.Fatal(err)
	}
	if b := state.Sites["c1"]; b.Grade != GradePoor || b.Endpoints != 1 || b.LossPct != 8 || b.Why == "" {
		t.Fatalf("state of c1: %+v", b)
	}

	var d SiteDetail
	if err := json.Unmarshal(request(t, api, APIPrefix+"sites/c1", tok).Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Endpoints) != 1 || d.Endpoints[0].Name != "Endpoint a" || d.Endpoints[0].Grade != GradePoor ||
		len(d.Path) != 4 || d.Path[3].ID != "central" || len(d.Endpoints[0].History.Grades) != 2 {
		t.Fatalf("detail %+v", d)
	}
	if rec := request(t, api, APIPrefix+"sites/nowhere", tok); rec.Code != 404 {
		t.Errorf("unknown site: %d", rec.Code)
	}
}

// The stream sends the state at once and after every sample, and ends when the token
// expires.
func TestAPIStream(t *testing.T) {
	h := newHarness(t, testTree(t))
	srv := httptest.NewServer(h.m.Handler(testKeys))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+APIPrefix+"stream", nil)
	req.Header.Set("Authorization", "Bearer "+tokenFor(t, auth.RoleTechnician, 2*time.Second))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := make(chan string, 10)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if kind, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				events <- kind
			}
		}
	}()
	next := func() string {
		select {
		case k := <-events:
			return k
		case <-time.After(5 * time.Second):
			t.Fatal("no event")
		}
		return ""
	}
	if k := next(); k != "state" {
		t.Fatalf("first event %q", k)
	}
	e := newEndpoint("a", "c1", "local")
	e.second(0)
	h.step([]*endpoint{e}, nil, nil)
	if k := next(); k != "state" {
		t.Fatalf("after a sample: %q", k)
	}
	if k := next(); k != "expired" {
		t.Fatalf("when the token expires: %q, want expired", k)
	}
	if _, open := <-events; open {
		t.Fatal("the stream goes on after its token expired")
	}
}

// The console page follows the CSP: no inline script, style or handler, and its assets exist.
func TestConsolePage(t *testing.T) {
	h := web.Handler()
	page := request(t, h, "/console?token=x.y.z", "")
	if page.Code != 200 || page.Header().Get("Cache-Control") != "no-store" ||
		page.Header().Get("Content-Security-Policy") != web.ContentSecurityPolicy || page.Header().Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("GET /console: %d, headers %v", page.Code, page.Header())
	}
	html := page.Body.String()
	for _, bad := range []*regexp.Regexp{regexp.MustCompile(`<script(\s[^>]*)?>\s*[^<\s]`), regexp.MustCompile(`<style`),
		regexp.MustCompile(`\sstyle=`), regexp.MustCompile(`\son[a-z]+=`)} {
		if bad.MatchString(html) {
			t.Errorf("console.html matches %s: the CSP would block it", bad)
		}
	}
	for _, m := range regexp.MustCompile(`(?:href|src)="(/static/[^"]+)"`).FindAllStringSubmatch(html, -1) {
		if rec := request(t, h, m[1], ""); rec.Code != 200 {
			t.Errorf("%s: %d", m[1], rec.Code)
		}
	}
	js := request(t, h, "/static/console.js", "").Body.String()
	for _, bad := range []string{"innerHTML", "eval(", "new Function", "setAttribute('style'", ".style."} {
		if strings.Contains(js, bad) {
			t.Errorf("console.js uses %s", bad)
		}
	}
	if !strings.Contains(js, "history.replaceState") || !strings.Contains(js, "Authorization") {
		t.Error("console.js must take the token out of the URL and send it in a header")
	}
}

// wantErrorBody checks an answer is an error of status in the REST surface's one shape,
// {"error":{"code","message"}}, with the code of that status.
func wantErrorBody(t *testing.T, rec *httptest.ResponseRecorder, status int) {
	t.Helper()
	codes := map[int]string{401: httpapi.CodeUnauthorized, 403: httpapi.CodeForbidden, 404: httpapi.CodeNotFound,
		405: httpapi.CodeMethodNotAllowed}
	e := httpapi.ParseError(rec.Code, rec.Body.Bytes())
	if e.Status != status || e.Code != codes[status] || e.Message == "" {
		t.Errorf("error answer %d %s, want %d with code %s and a message", rec.Code, rec.Body, status, codes[status])
	}
	if status == http.StatusUnauthorized && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("401 without a Bearer challenge: %q", rec.Header().Get("WWW-Authenticate"))
	}
}
