package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/httpapi"
	"github.com/cau-project/cau/rooms"
)

// principal is the verified caller of one request.
type principal struct {
	claims *auth.Claims
	actor  rooms.Actor
}

// authenticate verifies the request's bearer token.
func (a *API) authenticate(r *http.Request) (*principal, error) {
	tok, err := httpapi.BearerToken(r)
	if err != nil {
		return nil, err
	}
	// API tokens, and room devices' kiosk tokens (whose role the policies confine to
	// their own endpoint's plan and join tokens). Join tokens are for signaling only.
	c, err := a.cfg.Keys.Verify(tok, auth.UseAPI, auth.UseKiosk)
	if err != nil {
		return nil, errors.New("invalid or expired token")
	}
	// The audit names the token's holder, never a name from the request.
	return &principal{claims: c, actor: rooms.Actor{Name: c.Principal(), Role: rooms.Role(c.Role), Site: c.Site}}, nil
}

// policy decides whether p may make request r; the error says why not.
type policy func(p *principal, r *http.Request) error

// forbidden explains a refusal.
func forbidden(p *principal, what string) error {
	return fmt.Errorf("role %s may not %s", p.claims.Role, what)
}

// anyRole lets every role in except bridge, whose token only registers a bridge.
func anyRole(p *principal, _ *http.Request) error {
	if p.claims.Role == auth.RoleBridge {
		return forbidden(p, "use the API")
	}
	return nil
}

// adminOnly is for changes: only operators make them.
func adminOnly(p *principal, r *http.Request) error {
	if p.claims.Role == auth.RoleAdmin {
		return nil
	}
	return forbidden(p, describe(r))
}

// staff is for reading the registry and the schedule: operators and technicians.
func staff(p *principal, r *http.Request) error {
	switch p.claims.Role {
	case auth.RoleAdmin, auth.RoleTechnician:
		return nil
	}
	return forbidden(p, describe(r))
}

// meetingReader: staff, or the chair or a participant of that very meeting.
var meetingReader = staffOrOwnMeeting("read a meeting other than its own", auth.RoleChair, auth.RoleParticipant)

// rollCallReader: staff, or the chair of that meeting.
var rollCallReader = staffOrOwnMeeting("read the roll call of a meeting other than its own", auth.RoleChair)

// staffOrOwnMeeting lets staff in, and the given roles for the meeting their token
// names ({id}); other meetings are refused with "may not <other>".
func staffOrOwnMeeting(other string, roles ...auth.Role) policy {
	return func(p *principal, r *http.Request) error {
		switch {
		case p.claims.Role == auth.RoleAdmin || p.claims.Role == auth.RoleTechnician:
			return nil
		case !slices.Contains(roles, p.claims.Role):
			return forbidden(p, describe(r))
		case p.claims.Meeting != "" && p.claims.Meeting == r.PathValue("id"):
			return nil
		}
		return forbidden(p, other)
	}
}

// endpointReader: staff, or a room device asking about itself.
var endpointReader = rolesOrOwnEndpoint("read an endpoint other than its own", auth.RoleAdmin, auth.RoleTechnician)

// joinTokenMinter: an admin, or a room device for itself. Technicians test through
// their own join links, not a room's identity.
var joinTokenMinter = rolesOrOwnEndpoint("get a join token for an endpoint other than its own", auth.RoleAdmin)

// rolesOrOwnEndpoint lets the given roles in, and a room device for the endpoint its
// token names ({id}); other endpoints are refused with "may not <other>".
func rolesOrOwnEndpoint(other string, roles ...auth.Role) policy {
	return func(p *principal, r *http.Request) error {
		switch {
		case slices.Contains(roles, p.claims.Role):
			return nil
		case p.claims.Role != auth.RoleRoom:
			return forbidden(p, describe(r))
		case ownEndpoint(p, r):
			return nil
		}
		return forbidden(p, other)
	}
}

func ownEndpoint(p *principal, r *http.Request) bool {
	return p.claims.Endpoint != "" && p.claims.Endpoint == r.PathValue("id")
}

// describe names a request for refusal messages: "POST /api/v1/meetings".
func describe(r *http.Request) string {
	return r.Method + " " + r.URL.Path
}
