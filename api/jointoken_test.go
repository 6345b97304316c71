package api_test

import (
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/api"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/httpapi"
)

// TestMeetingJoinToken: an operator mints a join token for one site of a meeting on the
// terms signaling admits it (in the test window or live, a site of the meeting), with the
// role asked for; anything else is refused with the code that says why.
func TestMeetingJoinToken(t *testing.T) {
	e := newEnv(t, boltStore(t), exampleTree(t, "four-level.yaml"))
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
	claims, err := testKeys.Verify(jt.Token)
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
	if claims, _ = testKeys.Verify(jt.Token); claims.Role != auth.RoleParticipant || claims.Name != "qnam" {
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
	if c, err := testKeys.Verify(jt.Token); err != nil || c.Meeting != "loadtest" || c.Role != auth.RoleChair {
		t.Errorf("ad hoc token %+v, %v", c, err)
	}
	e.must(403, "POST", "/api/v1/meetings/loadtest/join-token", token(t, auth.Claims{Role: auth.RoleTechnician}),
		map[string]any{"site": "load-0001"})
}
