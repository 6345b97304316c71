package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cau-project/cau/api"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/deploy/examples"
	"github.com/cau-project/cau/internal/httpapi"
	"github.com/cau-project/cau/internal/testkit"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/rooms/store/redis"
	"github.com/cau-project/cau/rooms/storetest"
)

// testKey signs the tests' tokens; oldKey is a previous key still accepted.
const (
	testKey = "api-test-signing-key-0123456789abcdef"
	oldKey  = "api-old-signing-key-0123456789abcdefgh"
)

var testKeys = auth.Keys{Current: []byte(testKey), Previous: [][]byte{[]byte(oldKey)}}

// clock is a settable clock for the API.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// base is 08:00 on Monday 2 March 2026, Vietnam time: the tests' "now".
var base = time.Date(2026, 3, 2, 8, 0, 0, 0, rooms.Zone())

// env is one API over one store, served by httptest.
type env struct {
	t     *testing.T
	store rooms.Store
	api   *api.API
	srv   *httptest.Server
	clock *clock
	logs  *testutil.LockedBuffer
}

// exampleTree loads one of deploy/examples.
func exampleTree(t testing.TB, name string) *rooms.Tree {
	t.Helper()
	f, err := examples.FS.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tree, err := rooms.LoadTree(f)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// boltStore opens a fresh bbolt store in a temporary directory.
func boltStore(t testing.TB) rooms.Store {
	t.Helper()
	s, _ := testkit.Store(t)
	return s
}

// redisStore opens a store on a fresh redis-server (skipped without one, outside CI).
func redisStore(t testing.TB) rooms.Store {
	t.Helper()
	addr := storetest.StartRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := redis.Open(ctx, "redis://"+addr+"/0", "cau:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newEnv serves an API over store with tree saved in it (tree may be nil).
func newEnv(t *testing.T, store rooms.Store, tree *rooms.Tree) *env {
	t.Helper()
	if tree != nil {
		if err := store.SaveSites(context.Background(), tree.Sites()); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{t: t, store: store, clock: &clock{t: base}, logs: &testutil.LockedBuffer{}}
	e.api = api.New(api.Config{Store: store, Tree: tree, Keys: testKeys, Now: e.clock.Now,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	e.srv = httptest.NewServer(e.api)
	t.Cleanup(e.srv.Close)
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("API_TEST_LOGS") != "" {
			t.Logf("server log:\n%s", e.logs.String())
		}
	})
	return e
}

// fourLevelEnv is newEnv over a bbolt store with the four-level example tree
// (deploy/examples/four-level.yaml): what most API tests run against.
func fourLevelEnv(t *testing.T) *env {
	t.Helper()
	return newEnv(t, boltStore(t), exampleTree(t, "four-level.yaml"))
}

// token signs c; with no Use, for what the role calls: a bridge's control socket, a room
// device's kiosk surface, else the API.
func token(t testing.TB, c auth.Claims) string {
	t.Helper()
	if c.Use == "" {
		switch c.Role {
		case auth.RoleBridge:
			c.Use = auth.UseBridge
		case auth.RoleRoom:
			c.Use = auth.UseKiosk
		default:
			c.Use = auth.UseAPI
		}
	}
	s, err := testKeys.Sign(c, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func adminToken(t testing.TB) string {
	c := auth.Claims{Role: auth.RoleAdmin, Name: "Operator An"}
	c.Subject = "op-an"
	return token(t, c)
}

// response is what do returns.
type response struct {
	status int
	header http.Header
	body   []byte
}

// decode unmarshals the body into v, failing the test on error.
func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// errorCode returns the code of an error body ("http" if the body is not one).
func (r response) errorCode() string { return httpapi.ParseError(r.status, r.body).Code }

// do sends one request. body may be nil, a string (sent as is) or a value (as JSON).
func (e *env) do(method, path, tok string, body any) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// must sends a request and fails the test unless the status is want.
func (e *env) must(want int, method, path, tok string, body any) response {
	e.t.Helper()
	r := e.do(method, path, tok, body)
	if r.status != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, want, r.body)
	}
	return r
}

// addEndpoint creates an endpoint through the API and returns the device token (empty
// for laptops).
func (e *env) addEndpoint(id, site string, kind rooms.EndpointKind) string {
	e.t.Helper()
	r := e.must(http.StatusCreated, "POST", "/api/v1/endpoints", adminToken(e.t),
		map[string]any{"id": id, "name": "Phòng họp " + id, "site": site, "kind": kind})
	var out struct {
		DeviceToken string `json:"device_token"`
	}
	r.decode(e.t, &out)
	return out.DeviceToken
}

// schedule books a meeting through the API.
func (e *env) schedule(body map[string]any) httpapi.Meeting {
	e.t.Helper()
	var m httpapi.Meeting
	e.must(http.StatusCreated, "POST", "/api/v1/meetings", adminToken(e.t), body).decode(e.t, &m)
	return m
}

// at formats t as RFC 3339 in Vietnam time.
func at(t time.Time) string { return t.In(rooms.Zone()).Format(time.RFC3339) }
