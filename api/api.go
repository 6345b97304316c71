// Package api is Cầu's REST API under /api/v1/: the site tree, the endpoint registry,
// the meeting schedule, the meeting-room kiosk's plan and join tokens, roll calls and
// the audit log. Bodies are JSON (roll calls also CSV); errors are
// {"error":{"code":…,"message":…}} with a matching HTTP status. docs/openapi.yaml is the
// reference.
//
// Every call carries a JWT (Authorization: Bearer) verified with auth.Keys, and each
// role may do only its part (see policy.go): admin everything; technician reads the
// registry, meetings and roll calls; chair reads its meeting and its roll call;
// participant reads its meeting; room reads its own endpoint and plan and mints its own
// join tokens; bridge nothing. Every change writes an audit entry.
//
// The package holds the site tree in memory: changes made through the API apply to it
// (and to scheduling) at once; other users of the tree (signaling's bridge placement)
// get it through Config.OnTreeChange, or on restart.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/httpapi"
	"github.com/cau-project/cau/rooms"
)

// Prefix is where the API is mounted.
const Prefix = "/api/v1/"

// Default token lifetimes.
const (
	// DefaultDeviceTokenTTL is how long a room device's token lasts: a year, so a
	// kiosk keeps working without a visit; re-issue it (or delete the endpoint) to
	// cut it off.
	DefaultDeviceTokenTTL = 365 * 24 * time.Hour
	// DefaultJoinTokenTTL bounds a kiosk's join token: signaling checks it once at
	// join, so it only has to outlive the kiosk's reconnect attempts; a kiosk that
	// finds it expired asks for a new one.
	DefaultJoinTokenTTL = 15 * time.Minute
)

// Body size limits.
const (
	// MaxBodyBytes bounds an ordinary request body.
	MaxBodyBytes = 1 << 20
	// MaxTreeBodyBytes bounds a whole site tree (PUT /api/v1/sites): 11,000 sites
	// take about 1.5 MB of JSON.
	MaxTreeBodyBytes = 16 << 20
)

// Config is what New needs.
type Config struct {
	// Store keeps everything; nil makes every call answer 503.
	Store rooms.Store
	// Tree is the site tree loaded at start; nil if none yet (PUT /api/v1/sites
	// creates one).
	Tree *rooms.Tree
	// Keys verify callers' tokens and sign device and join tokens.
	Keys auth.Keys
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now (tests move it).
	Now func() time.Time
	// DeviceTokenTTL and JoinTokenTTL default to DefaultDeviceTokenTTL and
	// DefaultJoinTokenTTL.
	DeviceTokenTTL, JoinTokenTTL time.Duration
	// OnTreeChange, if set, is called with the new tree after the API changed it.
	OnTreeChange func(*rooms.Tree)
	// AdHocMeetings mints join tokens for meetings the store does not have, as
	// signaling admits them in dev mode.
	AdHocMeetings bool
	// Recordings runs meetings' recordings (recordings.go); nil answers 503 on those routes.
	Recordings Recordings
}

// API serves /api/v1/. It is an http.Handler, safe for concurrent use.
type API struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	store rooms.Store
	sched *rooms.Scheduler
	mux   *http.ServeMux
	// routes lists what routes registered, for Routes; written only by New.
	routes []httpapi.Route
	// tree is the current site tree (nil: none yet); replaced whole, never mutated.
	tree atomic.Pointer[rooms.Tree]
	// treeMu serialises this node's tree changes (read, change, save, swap).
	treeMu sync.Mutex
}

// New returns the API over cfg.Store.
func New(cfg Config) *API {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DeviceTokenTTL <= 0 {
		cfg.DeviceTokenTTL = DefaultDeviceTokenTTL
	}
	if cfg.JoinTokenTTL <= 0 {
		cfg.JoinTokenTTL = DefaultJoinTokenTTL
	}
	a := &API{cfg: cfg, log: cfg.Logger.With("component", "api"), now: cfg.Now, store: cfg.Store,
		mux: http.NewServeMux()}
	a.tree.Store(cfg.Tree)
	if cfg.Store != nil {
		a.sched = rooms.NewScheduler(cfg.Store, cfg.Tree)
		a.sched.SetClock(cfg.Now)
	}
	a.register()
	return a
}

// Tree returns the API's current site tree (nil if there is none).
func (a *API) Tree() *rooms.Tree { return a.tree.Load() }

// setTree installs a new tree everywhere it is used.
func (a *API) setTree(t *rooms.Tree) {
	a.tree.Store(t)
	a.sched.SetTree(t)
	if a.cfg.OnTreeChange != nil {
		a.cfg.OnTreeChange(t)
	}
}

// ServeHTTP serves one API request. A panic in a handler is logged and answered with
// 500, never passed on.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			a.log.Error("panic in handler", "method", r.Method, "path", r.URL.Path, "panic", v)
			writeError(w, http.StatusInternalServerError, httpapi.CodeInternal, "internal error")
		}
	}()
	httpapi.SetHeaders(w)
	if a.store == nil {
		writeError(w, http.StatusServiceUnavailable, httpapi.CodeUnavailable, "the API has no store configured")
		return
	}
	a.mux.ServeHTTP(w, r)
}

// handlerFunc is an API handler: it runs after authentication and authorisation.
type handlerFunc func(w http.ResponseWriter, r *http.Request, p *principal)

// route is one method on one path, with who may call it.
type route struct {
	method string
	allow  policy
	// action names the change for the audit log; empty for reads.
	action string
	handle handlerFunc
}

// handle registers path with its methods. Other methods get 405 with an Allow header,
// in JSON like every other error.
func (a *API) handle(path string, routes ...route) {
	allowed := ""
	for i, rt := range routes {
		a.routes = append(a.routes, httpapi.Route{Method: rt.method, Path: path})
		if i > 0 {
			allowed += ", "
		}
		allowed += rt.method
	}
	a.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet
		}
		for _, rt := range routes {
			if rt.method == method {
				a.serve(w, r, rt)
				return
			}
		}
		w.Header().Set("Allow", allowed)
		writeError(w, http.StatusMethodNotAllowed, httpapi.CodeMethodNotAllowed,
			fmt.Sprintf("%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allowed))
	})
}

// serve authenticates, authorises and runs one route.
func (a *API) serve(w http.ResponseWriter, r *http.Request, rt route) {
	p, err := a.authenticate(r)
	if err != nil {
		writeError(w, http.StatusUnauthorized, httpapi.CodeUnauthorized, err.Error())
		return
	}
	if err := rt.allow(p, r); err != nil {
		if rt.action != "" {
			a.audit(r.Context(), p, rt.action, auditTarget(r), "denied: "+err.Error())
		}
		writeError(w, http.StatusForbidden, httpapi.CodeForbidden, err.Error())
		return
	}
	rt.handle(w, r, p)
}

// Routes lists every method and path pattern the API serves.
func (a *API) Routes() []httpapi.Route { return a.routes }

// register registers every path. Paths under the prefix that match nothing get a JSON 404.
func (a *API) register() {
	const v = "/api/v1"
	a.handle(v+"/me", route{method: "GET", allow: anyRole, handle: a.getMe})

	a.handle(v+"/sites",
		route{method: "GET", allow: staff, handle: a.listSites},
		route{method: "PUT", allow: adminOnly, action: "replace_sites", handle: a.replaceSites},
		route{method: "POST", allow: adminOnly, action: "create_site", handle: a.createSite})
	a.handle(v+"/sites/{id}",
		route{method: "GET", allow: staff, handle: a.getSite},
		route{method: "PUT", allow: adminOnly, action: "update_site", handle: a.updateSite},
		route{method: "DELETE", allow: adminOnly, action: "delete_site", handle: a.deleteSite})

	a.handle(v+"/endpoints",
		route{method: "GET", allow: staff, handle: a.listEndpoints},
		route{method: "POST", allow: adminOnly, action: "create_endpoint", handle: a.createEndpoint})
	a.handle(v+"/endpoints/{id}",
		route{method: "GET", allow: endpointReader, handle: a.getEndpoint},
		route{method: "PUT", allow: adminOnly, action: "update_endpoint", handle: a.updateEndpoint},
		route{method: "DELETE", allow: adminOnly, action: "delete_endpoint", handle: a.deleteEndpoint})
	a.handle(v+"/endpoints/{id}/device-token",
		route{method: "POST", allow: adminOnly, action: "device_token", handle: a.issueDeviceToken})
	a.handle(v+"/endpoints/{id}/next",
		route{method: "GET", allow: endpointReader, handle: a.getNext})
	a.handle(v+"/endpoints/{id}/join-token",
		route{method: "POST", allow: joinTokenMinter, action: "join_token", handle: a.mintJoinToken})

	a.handle(v+"/meetings",
		route{method: "GET", allow: staff, handle: a.listMeetings},
		route{method: "POST", allow: adminOnly, action: "schedule", handle: a.scheduleMeeting})
	a.handle(v+"/meetings/{id}",
		route{method: "GET", allow: meetingReader, handle: a.getMeeting},
		route{method: "PATCH", allow: adminOnly, action: "reschedule", handle: a.rescheduleMeeting})
	a.handle(v+"/meetings/{id}/cancel",
		route{method: "POST", allow: adminOnly, action: "cancel", handle: a.cancelMeeting})
	a.handle(v+"/meetings/{id}/end",
		route{method: "POST", allow: adminOnly, action: "end", handle: a.endMeeting})
	a.handle(v+"/meetings/{id}/join-token",
		route{method: "POST", allow: adminOnly, action: "join_token", handle: a.mintMeetingJoinToken})
	a.handle(v+"/meetings/{id}/rollcall",
		route{method: "GET", allow: rollCallReader, handle: a.getRollCall})

	a.registerRecordings(v)

	a.handle(v+"/audit", route{method: "GET", allow: adminOnly, handle: a.getAudit})

	a.mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, httpapi.CodeNotFound, "no such API path: "+r.URL.Path)
	})
}

// audit appends an entry for p's action; a failure is logged, not returned: the change
// it records has already been made.
func (a *API) audit(ctx context.Context, p *principal, action, target, detail string) {
	e := rooms.NewAuditEntry(a.now(), p.actor, action, target, detail)
	a.log.Info("audit", "actor", e.Actor, "role", e.Role, "action", action, "target", target, "detail", detail)
	// The request may be cancelled by now; the entry must still be written.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := a.store.AppendAudit(ctx, e); err != nil {
		a.log.Error("audit entry lost", "err", err, "actor", e.Actor, "action", action, "target", target)
	}
}

// auditWith returns a context whose first store write also appends p's action to the
// audit log, in the same transaction, so a change is never made unaudited and a failed
// one leaves no entry. Call done after the change succeeded: it logs the action, and
// appends the entry alone if no store write took it.
func (a *API) auditWith(r *http.Request, p *principal, action, target, detail string) (ctx context.Context, done func()) {
	e := rooms.NewAuditEntry(a.now(), p.actor, action, target, detail)
	ctx, pa := rooms.WithAudit(r.Context(), e)
	return ctx, func() {
		a.log.Info("audit", "actor", e.Actor, "role", e.Role, "action", action, "target", target, "detail", detail)
		if pa.Written() {
			return
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
		defer cancel()
		if err := a.store.AppendAudit(wctx, pa.Entry); err != nil {
			a.log.Error("audit entry lost", "err", err, "actor", e.Actor, "action", action, "target", target)
		}
	}
}

// auditTarget is the id a request is about: the {id} path value, else the path.
func auditTarget(r *http.Request) string {
	if id := r.PathValue("id"); id != "" {
		return id
	}
	return r.URL.Path
}

// errNoTree means there is no site tree yet.
var errNoTree = errors.New("no site tree: create one with PUT /api/v1/sites (cau sites import)")
