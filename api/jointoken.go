package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/httpapi"
	"github.com/cau-project/cau/rooms"
)

// joinToken is the answer of both join-token calls.
func joinToken(tok, meeting, site, endpoint string, expires time.Time) httpapi.JoinToken {
	return httpapi.JoinToken{Token: tok, Meeting: meeting, Site: site, Endpoint: endpoint, ExpiresAt: expires,
		JoinPath: "/join/" + url.PathEscape(meeting) + "?autojoin=1&token=" + url.QueryEscape(tok)}
}

// joinRoles are the roles a meeting join token may carry: staff join with their own
// tokens, and a bridge never joins a meeting.
var joinRoles = map[auth.Role]bool{auth.RoleChair: true, auth.RoleParticipant: true, auth.RoleRoom: true}

// mintMeetingJoinToken: POST /api/v1/meetings/{id}/join-token — an operator's
// short-lived signaling token for one site of a meeting, on the same terms signaling
// admits it: the meeting is in its test window or live and the site takes part. A
// meeting the store does not have is refused, unless the server opens ad hoc meetings
// (dev mode), where any site may join. The load tester gets its tokens here, so it needs
// an operator's token, never the signing key.
func (a *API) mintMeetingJoinToken(w http.ResponseWriter, r *http.Request, p *principal) {
	var b httpapi.JoinTokenRequest
	if err := decodeJSON(w, r, MaxBodyBytes, &b); err != nil {
		a.fail(w, r, err)
		return
	}
	role := auth.Role(b.Role)
	if role == "" {
		role = auth.RoleParticipant
	}
	if !joinRoles[role] {
		a.fail(w, r, invalid("role %q: want chair, participant or room", b.Role))
		return
	}
	if b.Site == "" {
		a.fail(w, r, invalid("site is required"))
		return
	}
	id, now := r.PathValue("id"), a.now()
	ttl := a.cfg.JoinTokenTTL
	m, err := a.store.Meeting(r.Context(), id)
	switch {
	case errors.Is(err, rooms.ErrNotFound) && a.cfg.AdHocMeetings:
	case err != nil:
		a.fail(w, r, fmt.Errorf("join token: meeting %s: %w", id, err))
		return
	default:
		if st := m.StateAt(now); st != rooms.StateTesting && st != rooms.StateLive {
			a.fail(w, r, newError(http.StatusConflict, httpapi.CodeNotConnectable,
				"meeting %s %q is %s (its test window opens %s)", m.ID, m.Title, st, rooms.FormatLocal(m.WindowStart())))
			return
		}
		if !m.HasSite(b.Site) {
			a.fail(w, r, invalid("site %q does not take part in meeting %s", b.Site, m.ID))
			return
		}
		ttl = min(ttl, m.End.Sub(now)+time.Minute)
	}
	name := b.Name
	if name == "" {
		name = b.Site
	}
	tok, err := a.cfg.Keys.Sign(auth.Claims{Meeting: id, Site: b.Site, Name: name, Role: role}, ttl)
	if err != nil {
		a.fail(w, r, fmt.Errorf("join token for %s in %s: %w", b.Site, id, err))
		return
	}
	a.audit(r.Context(), p, "join_token", id, fmt.Sprintf("site %s, role %s", b.Site, role))
	writeJSON(w, http.StatusOK, joinToken(tok, id, b.Site, "", local(now.Add(ttl))))
}
