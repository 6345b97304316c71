// Joining: the kiosk's plan (its next meeting) and the join tokens, an endpoint's own
// and an operator's for any site of a meeting.

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

// planView is what a kiosk polls: who it is, where, and its next meeting.
type planView struct {
	Endpoint rooms.Endpoint `json:"endpoint"`
	Site     rooms.Site     `json:"site"`
	// Now is the server's clock, so a kiosk with a wrong clock still counts down right.
	Now  time.Time `json:"now"`
	Plan *planBody `json:"plan"`
}

// planBody is rooms.Plan with the meeting as the API shows it.
type planBody struct {
	Meeting      httpapi.Meeting `json:"meeting"`
	ConnectAt    time.Time       `json:"connect_at"`
	DisconnectAt time.Time       `json:"disconnect_at"`
	ConnectNow   bool            `json:"connect_now"`
}

// plan looks up the endpoint and its next meeting at now.
func (a *API) plan(r *http.Request, id string, now time.Time) (rooms.Endpoint, *rooms.Plan, error) {
	e, err := a.store.Endpoint(r.Context(), id)
	if err != nil {
		return e, nil, fmt.Errorf("endpoint plan: %w", err)
	}
	ms, err := a.store.Meetings(r.Context(), now)
	if err != nil {
		return e, nil, fmt.Errorf("endpoint plan: %w", err)
	}
	p, ok := rooms.NextMeeting(e, ms, now)
	if !ok {
		return e, nil, nil
	}
	return e, &p, nil
}

// getNext: GET /api/v1/endpoints/{id}/next — the kiosk's plan.
func (a *API) getNext(w http.ResponseWriter, r *http.Request, _ *principal) {
	now := a.now()
	e, p, err := a.plan(r, r.PathValue("id"), now)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := planView{Endpoint: e, Site: rooms.Site{ID: e.Site, Name: e.Site}, Now: local(now)}
	if t := a.Tree(); t != nil {
		if s, ok := t.Site(e.Site); ok {
			out.Site = s
		}
	}
	if p != nil {
		out.Plan = &planBody{Meeting: a.viewMeeting(p.Meeting, now, false), ConnectAt: local(p.ConnectAt),
			DisconnectAt: local(p.DisconnectAt), ConnectNow: p.ConnectNow}
	}
	writeJSON(w, http.StatusOK, out)
}

// joinToken is the answer of both join-token calls.
func joinToken(tok, meeting, site, endpoint string, expires time.Time) httpapi.JoinToken {
	return httpapi.JoinToken{Token: tok, Meeting: meeting, Site: site, Endpoint: endpoint, ExpiresAt: expires,
		JoinPath: "/join/" + url.PathEscape(meeting) + "?autojoin=1&token=" + url.QueryEscape(tok)}
}

// mintJoinToken: POST /api/v1/endpoints/{id}/join-token — a short-lived signaling
// token for the endpoint's current meeting, only while that meeting is connectable
// (its test window or the meeting itself). This is what lets a room device join only
// its own room's meetings: its device token names no meeting.
func (a *API) mintJoinToken(w http.ResponseWriter, r *http.Request, p *principal) {
	now := a.now()
	e, plan, err := a.plan(r, r.PathValue("id"), now)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if plan == nil {
		a.fail(w, r, newError(http.StatusConflict, httpapi.CodeNotConnectable, "no meeting is booked for site %s", e.Site))
		return
	}
	if !plan.ConnectNow {
		a.fail(w, r, newError(http.StatusConflict, httpapi.CodeNotConnectable, "meeting %s %q opens at %s, not yet",
			plan.Meeting.ID, plan.Meeting.Title, rooms.FormatLocal(plan.ConnectAt)))
		return
	}
	// Valid for the reconnects of one sitting, never past the meeting's end.
	ttl := min(a.cfg.JoinTokenTTL, plan.DisconnectAt.Sub(now)+time.Minute)
	tok, err := a.cfg.Keys.Sign(auth.Claims{Use: auth.UseJoin, Meeting: plan.Meeting.ID, Site: e.Site, Name: e.Name,
		Role: auth.RoleRoom, Endpoint: e.ID}, ttl)
	if err != nil {
		a.fail(w, r, fmt.Errorf("join token for %s: %w", e.ID, err))
		return
	}
	a.audit(r.Context(), p, "join_token", e.ID, "meeting "+plan.Meeting.ID)
	writeJSON(w, http.StatusOK, joinToken(tok, plan.Meeting.ID, e.Site, e.ID, local(now.Add(ttl))))
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
	tok, err := a.cfg.Keys.Sign(auth.Claims{Use: auth.UseJoin, Meeting: id, Site: b.Site, Name: name, Role: role}, ttl)
	if err != nil {
		a.fail(w, r, fmt.Errorf("join token for %s in %s: %w", b.Site, id, err))
		return
	}
	a.audit(r.Context(), p, "join_token", id, fmt.Sprintf("site %s, role %s", b.Site, role))
	writeJSON(w, http.StatusOK, joinToken(tok, id, b.Site, "", local(now.Add(ttl))))
}
