package api_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/rooms"
)

// The roles of the matrix, with the tokens' scope: the chair and the participant belong
// to meeting m1, the room device is endpoint room-a.
var matrixRoles = []auth.Role{auth.RoleAdmin, auth.RoleTechnician, auth.RoleChair, auth.RoleParticipant, auth.RoleRoom, auth.RoleBridge}

func matrixToken(t *testing.T, r auth.Role) string {
	c := auth.Claims{Role: r, Name: "who-" + string(r)}
	switch r {
	case auth.RoleChair, auth.RoleParticipant:
		c.Meeting, c.Site = "m1", "qnam"
	case auth.RoleRoom:
		c.Endpoint, c.Site = "room-a", "qnam-psn-c01"
	case auth.RoleBridge:
		c.Site = "qnam"
	}
	return token(t, c)
}

// matrixEnv is the world every action runs in: two room endpoints, meeting m1 live
// with both, meeting m2 tomorrow at Sa Pa; the Bát Xát and Bảo Hà sites are in neither.
func matrixEnv(t *testing.T) *env {
	e := fourLevelEnv(t)
	e.addEndpoint("room-a", "qnam-psn-c01", rooms.KindRoom)
	e.addEndpoint("room-b", "qnam-psn-c02", rooms.KindRoom)
	e.schedule(map[string]any{"id": "m1", "title": "Họp tỉnh", "select": map[string]any{"root": "qnam"},
		"start": at(base.Add(-10 * time.Minute)), "end": at(base.Add(time.Hour))})
	e.schedule(map[string]any{"id": "m2", "title": "Họp Sa Pa", "select": map[string]any{"root": "lc-sp"},
		"start": at(base.Add(24 * time.Hour)), "end": at(base.Add(25 * time.Hour))})
	return e
}

// TestAuthorisationMatrix: every role × every action, allowed or forbidden as the
// policy says; no token at all is 401 everywhere.
func TestAuthorisationMatrix(t *testing.T) {
	const (
		A = auth.RoleAdmin
		T = auth.RoleTechnician
		C = auth.RoleChair
		P = auth.RoleParticipant
		R = auth.RoleRoom
	)
	newSite := rooms.Site{ID: "qnam-psn-c09", Name: "Xã Chín", Level: "commune", Parent: "qnam-psn"}
	actions := []struct {
		method, path string
		body         any
		allowed      []auth.Role
	}{
		{"GET", "/api/v1/me", nil, []auth.Role{A, T, C, P, R}},
		{"GET", "/api/v1/sites", nil, []auth.Role{A, T}},
		{"GET", "/api/v1/sites?view=tree", nil, []auth.Role{A, T}},
		{"GET", "/api/v1/sites/qnam", nil, []auth.Role{A, T}},
		{"PUT", "/api/v1/sites", map[string]any{"sites": exampleTree(t, "four-level.yaml").Sites()}, []auth.Role{A}},
		{"POST", "/api/v1/sites", newSite, []auth.Role{A}},
		{"PUT", "/api/v1/sites/qnam-psn-c04", rooms.Site{Name: "Xã Bốn", Level: "commune", Parent: "qnam-psn"}, []auth.Role{A}},
		{"DELETE", "/api/v1/sites/lc-bh-c03", nil, []auth.Role{A}},
		{"GET", "/api/v1/endpoints", nil, []auth.Role{A, T}},
		{"POST", "/api/v1/endpoints", map[string]any{"id": "room-c", "site": "lc", "kind": "room"}, []auth.Role{A}},
		{"GET", "/api/v1/endpoints/room-a", nil, []auth.Role{A, T, R}},
		{"GET", "/api/v1/endpoints/room-b", nil, []auth.Role{A, T}},
		{"PUT", "/api/v1/endpoints/room-a", map[string]any{"name": "x", "site": "qnam-psn-c01", "kind": "room"}, []auth.Role{A}},
		{"DELETE", "/api/v1/endpoints/room-a", nil, []auth.Role{A}},
		{"POST", "/api/v1/endpoints/room-a/device-token", nil, []auth.Role{A}},
		{"GET", "/api/v1/endpoints/room-a/next", nil, []auth.Role{A, T, R}},
		{"GET", "/api/v1/endpoints/room-b/next", nil, []auth.Role{A, T}},
		{"POST", "/api/v1/endpoints/room-a/join-token", nil, []auth.Role{A, R}},
		{"POST", "/api/v1/endpoints/room-b/join-token", nil, []auth.Role{A}},
		{"GET", "/api/v1/meetings", nil, []auth.Role{A, T}},
		{"POST", "/api/v1/meetings", map[string]any{"title": "Mới", "sites": []string{"lc-sp"},
			"start": at(base.Add(48 * time.Hour)), "end": at(base.Add(49 * time.Hour))}, []auth.Role{A}},
		{"GET", "/api/v1/meetings/m1", nil, []auth.Role{A, T, C, P}},
		{"GET", "/api/v1/meetings/m2", nil, []auth.Role{A, T}},
		{"PATCH", "/api/v1/meetings/m1", map[string]any{"title": "Đổi tên"}, []auth.Role{A}},
		{"POST", "/api/v1/meetings/m1/cancel", nil, []auth.Role{A}},
		{"POST", "/api/v1/meetings/m1/end", nil, []auth.Role{A}},
		{"POST", "/api/v1/meetings/m1/join-token", map[string]any{"site": "qnam-psn-c01", "role": "room"}, []auth.Role{A}},
		{"GET", "/api/v1/meetings/m1/rollcall", nil, []auth.Role{A, T, C}},
		{"GET", "/api/v1/meetings/m1/rollcall?format=csv", nil, []auth.Role{A, T, C}},
		{"GET", "/api/v1/meetings/m2/rollcall", nil, []auth.Role{A, T}},
		{"GET", "/api/v1/audit", nil, []auth.Role{A}},
	}
	var table strings.Builder
	fmt.Fprintf(&table, "%-48s", "action")
	for _, r := range matrixRoles {
		fmt.Fprintf(&table, " %-11s", r)
	}
	table.WriteString("\n")
	for _, act := range actions {
		name := act.method + " " + act.path
		fmt.Fprintf(&table, "%-48s", name)
		t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) {
			e := matrixEnv(t)
			if r := e.do(act.method, act.path, "", act.body); r.status != http.StatusUnauthorized {
				t.Errorf("no token: %d, want 401", r.status)
			}
			// Forbidden roles first: a refusal must change nothing, so the allowed
			// roles after them still find the world as set up.
			roles := slices.Clone(matrixRoles)
			slices.SortStableFunc(roles, func(a, b auth.Role) int {
				return boolInt(slices.Contains(act.allowed, a)) - boolInt(slices.Contains(act.allowed, b))
			})
			for _, role := range roles {
				r := e.do(act.method, act.path, matrixToken(t, role), act.body)
				allowed := slices.Contains(act.allowed, role)
				switch {
				case allowed && (r.status < 200 || r.status > 299):
					t.Errorf("%s: %d, want 2xx: %s", role, r.status, r.body)
				case !allowed && role == auth.RoleBridge:
					// A bridge's credential is not an API token at all.
					if r.status != http.StatusUnauthorized {
						t.Errorf("bridge: %d, want 401: %s", r.status, r.body)
					}
				case !allowed && (r.status != http.StatusForbidden || r.errorCode() != "forbidden"):
					t.Errorf("%s: %d, want 403: %s", role, r.status, r.body)
				}
			}
		})
		for _, r := range matrixRoles {
			mark := "-"
			if slices.Contains(act.allowed, r) {
				mark = "yes"
			}
			fmt.Fprintf(&table, " %-11s", mark)
		}
		table.WriteString("\n")
	}
	t.Logf("authorisation matrix (chair/participant of m1, room = endpoint room-a):\n%s", table.String())
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
