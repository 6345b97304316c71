package api

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/httpapi"
	"github.com/cau-project/cau/rooms"
)

// endpointBody is what POST and PUT /endpoints take.
type endpointBody struct {
	ID   string             `json:"id"`
	Name string             `json:"name"`
	Site string             `json:"site"`
	Kind rooms.EndpointKind `json:"kind"`
	// SIPURI: the SIP gateway calls this room while its meetings are open (rooms.Endpoint).
	SIPURI string `json:"sip_uri,omitempty"`
}

// deviceToken is a room device's credential, returned when the endpoint is created and
// when it is re-issued.
type deviceToken struct {
	Token     string    `json:"device_token"`
	ExpiresAt time.Time `json:"device_token_expires_at"`
	// KioskPath is the kiosk page with the token: open it on the room's screen.
	KioskPath string `json:"kiosk_path"`
}

// listEndpoints: GET /api/v1/endpoints[?site=…&kind=…].
func (a *API) listEndpoints(w http.ResponseWriter, r *http.Request, _ *principal) {
	eps, err := a.store.Endpoints(r.Context())
	if err != nil {
		a.fail(w, r, fmt.Errorf("list endpoints: %w", err))
		return
	}
	q := r.URL.Query()
	site, kind := q.Get("site"), rooms.EndpointKind(q.Get("kind"))
	out := []rooms.Endpoint{}
	for _, e := range eps {
		if (site == "" || e.Site == site) && (kind == "" || e.Kind == kind) {
			out = append(out, e)
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Endpoints []rooms.Endpoint `json:"endpoints"`
	}{out})
}

// getEndpoint: GET /api/v1/endpoints/{id}.
func (a *API) getEndpoint(w http.ResponseWriter, r *http.Request, _ *principal) {
	e, err := a.store.Endpoint(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, fmt.Errorf("endpoint: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, e)
}

// createEndpoint: POST /api/v1/endpoints. A room endpoint comes with its device token.
func (a *API) createEndpoint(w http.ResponseWriter, r *http.Request, p *principal) {
	var b endpointBody
	if err := decodeJSON(w, r, MaxBodyBytes, &b); err != nil {
		a.fail(w, r, err)
		return
	}
	if b.ID == "" {
		b.ID = newEndpointID()
	}
	if b.Kind == "" {
		b.Kind = rooms.KindRoom
	}
	e := rooms.Endpoint(b)
	if err := a.validEndpoint(e); err != nil {
		a.fail(w, r, err)
		return
	}
	switch _, err := a.store.Endpoint(r.Context(), e.ID); {
	case err == nil:
		a.fail(w, r, newError(http.StatusConflict, httpapi.CodeExists, "endpoint %q already exists", e.ID))
		return
	case !errors.Is(err, rooms.ErrNotFound):
		a.fail(w, r, fmt.Errorf("create endpoint: %w", err))
		return
	}
	ctx, audited := a.auditWith(r, p, "create_endpoint", e.ID, fmt.Sprintf("%s %q at %s", e.Kind, e.Name, e.Site))
	if err := a.store.PutEndpoint(ctx, e); err != nil {
		a.fail(w, r, fmt.Errorf("create endpoint: %w", err))
		return
	}
	audited()
	out := struct {
		Endpoint rooms.Endpoint `json:"endpoint"`
		*deviceToken
	}{Endpoint: e}
	if e.Kind == rooms.KindRoom {
		dt, err := a.deviceToken(e)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		out.deviceToken = &dt
		a.audit(r.Context(), p, "device_token", e.ID, "issued with the endpoint, expires "+rooms.FormatLocal(dt.ExpiresAt))
	}
	w.Header().Set("Location", Prefix+"endpoints/"+url.PathEscape(e.ID))
	writeJSON(w, http.StatusCreated, out)
}

// updateEndpoint: PUT /api/v1/endpoints/{id} — name, site and kind (not the id).
func (a *API) updateEndpoint(w http.ResponseWriter, r *http.Request, p *principal) {
	var b endpointBody
	id, err := decodeUpdate(w, r, "endpoint", &b, &b.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	e := rooms.Endpoint(b)
	if err := a.validEndpoint(e); err != nil {
		a.fail(w, r, err)
		return
	}
	if _, err := a.store.Endpoint(r.Context(), id); err != nil {
		a.fail(w, r, fmt.Errorf("update endpoint: %w", err))
		return
	}
	ctx, audited := a.auditWith(r, p, "update_endpoint", id, fmt.Sprintf("%s %q at %s", e.Kind, e.Name, e.Site))
	if err := a.store.PutEndpoint(ctx, e); err != nil {
		a.fail(w, r, fmt.Errorf("update endpoint: %w", err))
		return
	}
	audited()
	writeJSON(w, http.StatusOK, e)
}

// deleteEndpoint: DELETE /api/v1/endpoints/{id}. The device token then opens nothing:
// every use looks the endpoint up.
func (a *API) deleteEndpoint(w http.ResponseWriter, r *http.Request, p *principal) {
	id := r.PathValue("id")
	ctx, audited := a.auditWith(r, p, "delete_endpoint", id, "")
	if err := a.store.DeleteEndpoint(ctx, id); err != nil {
		a.fail(w, r, fmt.Errorf("delete endpoint: %w", err))
		return
	}
	audited()
	w.WriteHeader(http.StatusNoContent)
}

// issueDeviceToken: POST /api/v1/endpoints/{id}/device-token — a new device token for a
// room endpoint (after a key rotation, or a new kiosk).
func (a *API) issueDeviceToken(w http.ResponseWriter, r *http.Request, p *principal) {
	e, err := a.store.Endpoint(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, fmt.Errorf("device token: %w", err))
		return
	}
	if e.Kind != rooms.KindRoom {
		a.fail(w, r, invalid("endpoint %s is a %s: only room devices get a device token", e.ID, e.Kind))
		return
	}
	dt, err := a.deviceToken(e)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.audit(r.Context(), p, "device_token", e.ID, "re-issued, expires "+rooms.FormatLocal(dt.ExpiresAt))
	writeJSON(w, http.StatusOK, dt)
}

func (a *API) validEndpoint(e rooms.Endpoint) error {
	t := a.Tree()
	if t == nil {
		return invalid("endpoint %s: %v", e.ID, errNoTree)
	}
	if err := rooms.ValidateEndpoint(e, t); err != nil {
		return invalid("%v", err)
	}
	return nil
}

// deviceToken signs a room device's long-lived token: role room, its endpoint and site,
// no meeting (so signaling refuses it as a join token).
func (a *API) deviceToken(e rooms.Endpoint) (deviceToken, error) {
	ttl := a.cfg.DeviceTokenTTL
	tok, err := a.cfg.Keys.Sign(auth.Claims{Use: auth.UseKiosk, Role: auth.RoleRoom, Endpoint: e.ID, Site: e.Site, Name: e.Name}, ttl)
	if err != nil {
		return deviceToken{}, fmt.Errorf("device token for %s: %w", e.ID, err)
	}
	return deviceToken{
		Token:     tok,
		ExpiresAt: a.now().Add(ttl).In(rooms.Zone()).Truncate(time.Second),
		KioskPath: "/room/" + url.PathEscape(e.ID) + "?token=" + url.QueryEscape(tok),
	}, nil
}

// newEndpointID returns a fresh random endpoint id such as "ep-3f9a0c5e7b21".
func newEndpointID() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "ep-" + hex.EncodeToString(b[:])
}

// getMe: GET /api/v1/me — the caller's verified claims.
func (a *API) getMe(w http.ResponseWriter, _ *http.Request, p *principal) {
	c := p.claims
	var exp time.Time
	if c.ExpiresAt != nil {
		exp = local(c.ExpiresAt.Time)
	}
	writeJSON(w, http.StatusOK, struct {
		Name      string    `json:"name"`
		Role      auth.Role `json:"role"`
		Site      string    `json:"site,omitempty"`
		Meeting   string    `json:"meeting,omitempty"`
		Endpoint  string    `json:"endpoint,omitempty"`
		ExpiresAt time.Time `json:"expires_at"`
	}{cmp.Or(c.Name, p.actor.Name), c.Role, c.Site, c.Meeting, c.Endpoint, exp})
}

// local shows t in Vietnam time (Asia/Ho_Chi_Minh, +07:00).
func local(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.In(rooms.Zone())
}
