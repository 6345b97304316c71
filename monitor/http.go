package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cau-project/cau/auth"
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
	mux.HandleFunc("GET "+APIPrefix+"tree", h.auth(h.tree))
	mux.HandleFunc("GET "+APIPrefix+"state", h.auth(h.state))
	mux.HandleFunc("GET "+APIPrefix+"stream", h.auth(h.stream))
	mux.HandleFunc("GET "+APIPrefix+"sites/{id}", h.auth(h.site))
	mux.HandleFunc("GET "+APIPrefix+"alerts", h.auth(h.alerts))
	mux.HandleFunc("GET "+APIPrefix+"meetings", h.auth(h.meetings))
	mux.HandleFunc("GET "+APIPrefix+"meetings/{id}", h.auth(h.meeting))
	return mux
}

type api struct {
	m       *Monitor
	keys    auth.Keys
	streams atomic.Int32

	treeOnce sync.Once
	treeJSON []byte
}

// errForbidden is answered to a valid token of a role that may not use the console.
var errForbidden = errors.New("the console needs role technician or admin")

// auth checks the bearer token and the role before calling next with the claims.
func (h *api) auth(next func(http.ResponseWriter, *http.Request, *auth.Claims)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cau console"`)
			writeError(w, http.StatusUnauthorized, "missing bearer token")
			return
		}
		claims, err := h.keys.Verify(strings.TrimSpace(tok))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cau console", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "invalid or expired token")
			return
		}
		if claims.Role != auth.RoleTechnician && claims.Role != auth.RoleAdmin {
			writeError(w, http.StatusForbidden, errForbidden.Error())
			return
		}
		next(w, r, claims)
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encode: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// treeSite is one registry site in /tree: [id, name, level, parent] keeps 3,400 sites
// near 200 KB.
type treeSite [4]string

func (h *api) tree(w http.ResponseWriter, _ *http.Request, _ *auth.Claims) {
	h.treeOnce.Do(func() {
		out := struct {
			Root   string     `json:"root"`
			Levels []string   `json:"levels"`
			Sites  []treeSite `json:"sites"`
		}{Levels: []string{}, Sites: []treeSite{}}
		if t := h.m.Tree(); t != nil {
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
		h.treeJSON = b
	})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(h.treeJSON)
}

func (h *api) state(w http.ResponseWriter, _ *http.Request, _ *auth.Claims) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(h.m.Snapshot().streamJSON())
}

func (h *api) site(w http.ResponseWriter, r *http.Request, _ *auth.Claims) {
	d, ok := h.m.Detail(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, "no such site")
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
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("more than %d console streams", MaxStreams))
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
