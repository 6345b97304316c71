package monitor

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/httpapi"
	"github.com/cau-project/cau/rooms"
)

// APIPrefix is where Handler serves; mount the handler there.
const APIPrefix = "/api/v1/monitor/"

// MaxStreams bounds the console streams served at once (each costs a goroutine and a
// write per second).
const MaxStreams = 64

// Handler serves the console's data feed, for role technician or admin only:
//
//	GET /api/v1/monitor/tree          the site registry, once: {root, levels, sites[]}
//	GET /api/v1/monitor/state         the latest state, as one stream event
//	GET /api/v1/monitor/stream        Server-Sent Events: a "state" event after every sample
//	GET /api/v1/monitor/sites/{id}    one site's detail: endpoints, sparklines, relay path
//	GET /api/v1/monitor/alerts        every alert kept, newest first
//	GET /api/v1/monitor/meetings      the meetings in their test window or live now
//	GET /api/v1/monitor/meetings/{id} one's pre-meeting check or live roll call
//
// The token travels in "Authorization: Bearer <jwt>", never in the URL, so it stays out of
// access logs. A stream ends when its token expires; the console then asks for a new one.
func (m *Monitor) Handler(keys auth.Keys) http.Handler {
	h := &api{m: m, keys: keys}
	mux := http.NewServeMux()
	for _, rt := range h.routes() {
		mux.HandleFunc(rt.path, func(w http.ResponseWriter, r *http.Request) {
			httpapi.SetHeaders(w)
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.Header().Set("Allow", http.MethodGet)
				httpapi.WriteError(w, http.StatusMethodNotAllowed, httpapi.CodeMethodNotAllowed,
					fmt.Sprintf("%s is not allowed on %s (allowed: GET)", r.Method, r.URL.Path))
				return
			}
			h.auth(w, r, rt.handle)
		})
	}
	mux.HandleFunc(APIPrefix, func(w http.ResponseWriter, r *http.Request) {
		httpapi.SetHeaders(w)
		httpapi.WriteError(w, http.StatusNotFound, httpapi.CodeNotFound, "no such API path: "+r.URL.Path)
	})
	return mux
}

// Routes lists every method and path pattern Handler serves.
func Routes() []httpapi.Route {
	var out []httpapi.Route
	for _, rt := range (&api{}).routes() {
		out = append(out, httpapi.Route{Method: http.MethodGet, Path: rt.path})
	}
	return out
}

// route is one GET path of the console feed.
type route struct {
	path   string
	handle func(http.ResponseWriter, *http.Request, *auth.Claims)
}

func (h *api) routes() []route {
	return []route{
		{APIPrefix + "tree", h.tree},
		{APIPrefix + "state", h.state},
		{APIPrefix + "stream", h.stream},
		{APIPrefix + "sites/{id}", h.site},
		{APIPrefix + "alerts", h.alerts},
		{APIPrefix + "meetings", h.meetings},
		{APIPrefix + "meetings/{id}", h.meeting},
	}
}

type api struct {
	m       *Monitor
	keys    auth.Keys
	streams atomic.Int32

	treeMu   sync.Mutex  // guards treeFor and treeJSON
	treeFor  *rooms.Tree // the tree treeJSON was built from
	treeJSON []byte
}

// auth checks the bearer token and the role before calling next with the claims.
func (h *api) auth(w http.ResponseWriter, r *http.Request, next func(http.ResponseWriter, *http.Request, *auth.Claims)) {
	tok, err := httpapi.BearerToken(r)
	if err != nil {
		httpapi.WriteError(w, http.StatusUnauthorized, httpapi.CodeUnauthorized, err.Error())
		return
	}
	claims, err := h.keys.Verify(tok, auth.UseAPI)
	if err != nil {
		httpapi.WriteError(w, http.StatusUnauthorized, httpapi.CodeUnauthorized, "invalid or expired token")
		return
	}
	if claims.Role != auth.RoleTechnician && claims.Role != auth.RoleAdmin {
		httpapi.WriteError(w, http.StatusForbidden, httpapi.CodeForbidden, "the console needs role technician or admin")
		return
	}
	next(w, r, claims)
}

// writeJSON answers 200 with v.
func writeJSON(w http.ResponseWriter, v any) { httpapi.WriteJSON(w, http.StatusOK, v) }

// treeSite is one registry site in /tree: [id, name, level, parent] keeps 3,400 sites
// near 200 KB.
type treeSite [4]string

func (h *api) tree(w http.ResponseWriter, _ *http.Request, _ *auth.Claims) {
	t := h.m.Tree()
	h.treeMu.Lock()
	if h.treeJSON == nil || h.treeFor != t {
		out := struct {
			Root   string     `json:"root"`
			Levels []string   `json:"levels"`
			Sites  []treeSite `json:"sites"`
		}{Levels: []string{}, Sites: []treeSite{}}
		if t != nil {
			out.Root = t.Root().ID
			for _, l := range t.Levels() {
				out.Levels = append(out.Levels, string(l))
			}
			for _, s := range t.Sites() {
				out.Sites = append(out.Sites, treeSite{s.ID, s.Name, string(s.Level), s.Parent})
			}
		}
		b, err := json.Marshal(out)
		if err != nil {
			b = []byte(`{"sites":[]}`)
		}
		h.treeJSON, h.treeFor = b, t
	}
	body := h.treeJSON
	h.treeMu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func (h *api) state(w http.ResponseWriter, _ *http.Request, _ *auth.Claims) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(h.m.Snapshot().streamJSON())
}

func (h *api) site(w http.ResponseWriter, r *http.Request, _ *auth.Claims) {
	d, ok := h.m.Detail(r.PathValue("id"))
	if !ok {
		httpapi.WriteError(w, http.StatusNotFound, httpapi.CodeNotFound, "no such site")
		return
	}
	writeJSON(w, d)
}

func (h *api) alerts(w http.ResponseWriter, _ *http.Request, _ *auth.Claims) {
	writeJSON(w, h.m.Snapshot().Alerts)
}

// stream sends the state now and after every sample, until the client goes, the token
// expires, or the server shuts down (the request's context ends).
func (h *api) stream(w http.ResponseWriter, r *http.Request, claims *auth.Claims) {
	if h.streams.Add(1) > MaxStreams {
		h.streams.Add(-1)
		httpapi.WriteError(w, http.StatusServiceUnavailable, httpapi.CodeUnavailable,
			fmt.Sprintf("more than %d console streams", MaxStreams))
		return
	}
	defer h.streams.Add(-1)
	rc := http.NewResponseController(w)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("X-Accel-Buffering", "no") // a reverse proxy must not hold the events back
	w.WriteHeader(http.StatusOK)

	var expires <-chan time.Time
	if claims.ExpiresAt != nil {
		t := time.NewTimer(time.Until(claims.ExpiresAt.Time))
		defer t.Stop()
		expires = t.C
	}
	var last *Snapshot
	for {
		next := h.m.Next() // before reading the snapshot, so no publication is missed
		if s := h.m.Snapshot(); s != last {
			last = s
			_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := fmt.Fprintf(w, "event: state\ndata: %s\n\n", s.streamJSON()); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-h.m.Done():
			return
		case <-expires:
			_, _ = fmt.Fprint(w, "event: expired\ndata: {}\n\n")
			_ = rc.Flush()
			return
		case <-next:
		}
	}
}
