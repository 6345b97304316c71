// Package whip is Cầu's WHIP ingest (RFC 9725): an encoder (OBS, GStreamer, a hardware
// codec) publishes into a meeting with one HTTP POST of its SDP offer and ends with a
// DELETE of the resource the POST created.
//
// The gateway does no media and no signaling of its own: each resource is an endpoint
// attached to signaling (signaling.Attach), so the encoder joins with its join token,
// is placed on a bridge like a browser, appears in the meeting and the roll call as a
// participant of its token's site, and publishes through the bridge's publisher
// connection. It subscribes to nothing.
//
// Routes (errors in the REST surface's one shape, package internal/httpapi):
//
//	POST    /whip/{meeting}       application/sdp offer → 201, Location, ETag, answer
//	DELETE  /whip/{meeting}/{id}  → 204 (the same Bearer token as the POST)
//	PATCH   /whip/{meeting}/{id}  trickle-ice-sdpfrag, If-Match → 204 (patch.go)
//	OPTIONS /whip/{meeting}[/…]   → 204 with CORS headers
//
// WHEP egress, the other direction, is in whep.go.
package whip

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/httpapi"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/signaling"
)

// Prefix is the path under which the gateway serves.
const Prefix = "/whip/"

// MaxOfferBytes bounds a POST body: an encoder's offer is a few kilobytes.
const MaxOfferBytes = 32 << 10

// DefaultMaxResources caps the live WHIP resources of one gateway.
const DefaultMaxResources = 256

// requestTimeout bounds a join or an offer (the bridge's answer waits briefly for ICE
// gathering).
const requestTimeout = 15 * time.Second

// Config configures a Gateway.
type Config struct {
	Signaling *signaling.Server
	// Keys verify join tokens before anything joins, so a token for another meeting is
	// refused without appearing in it.
	Keys   auth.Keys
	Logger *slog.Logger
	// MaxResources caps live resources, WHIP and WHEP together (503 beyond); 0 means
	// DefaultMaxResources.
	MaxResources int
	// Loopback lets the WHEP connections use loopback candidates (dev mode, tests).
	Loopback bool
}

// Gateway serves WHIP. It owns its resources.
type Gateway struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex // guards resources and viewers
	resources map[string]*resource
	viewers   map[string]*viewer

	apiOnce sync.Once
	api     *webrtc.API // WHEP's connections; built on first use
}

// resource is one publishing encoder. Its fields are set before it is put in the map
// and read-only after.
type resource struct {
	id, meeting string
	etag        string
	ufrag       string   // the offer's ICE username fragment: another one in a PATCH is a restart
	tokenHash   [32]byte // DELETE must bear the same token; only its hash is kept
	ep          *signaling.Attached
}

// New creates a Gateway.
func New(cfg Config) *Gateway {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxResources == 0 {
		cfg.MaxResources = DefaultMaxResources
	}
	return &Gateway{cfg: cfg, log: cfg.Logger.With("component", "whip"), resources: map[string]*resource{},
		viewers: map[string]*viewer{}}
}

// Routes are the gateway's routes, for registration on a mux.
func (g *Gateway) Routes() map[httpapi.Route]http.HandlerFunc {
	del, patch := g.sessionHandlers("WHIP", lookupIn(g.resources))
	routes := map[httpapi.Route]http.HandlerFunc{
		{Method: http.MethodPost, Path: Prefix + "{meeting}"}:         g.create,
		{Method: http.MethodOptions, Path: Prefix + "{meeting}"}:      g.options,
		{Method: http.MethodGet, Path: Prefix + "{meeting}"}:          g.notAllowed,
		{Method: http.MethodDelete, Path: Prefix + "{meeting}/{id}"}:  del,
		{Method: http.MethodPatch, Path: Prefix + "{meeting}/{id}"}:   patch,
		{Method: http.MethodOptions, Path: Prefix + "{meeting}/{id}"}: g.options,
	}
	for r, h := range whepRoutes(g) {
		routes[r] = h
	}
	return routes
}

// Register adds the gateway's routes to mux.
func (g *Gateway) Register(mux *http.ServeMux) {
	for r, h := range g.Routes() {
		mux.HandleFunc(r.Method+" "+r.Path, h)
	}
}

// Count returns the live resources, WHIP and WHEP.
func (g *Gateway) Count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.resources) + len(g.viewers)
}

// Close ends every resource.
func (g *Gateway) Close() {
	g.mu.Lock()
	all := make([]*resource, 0, len(g.resources))
	for _, r := range g.resources {
		all = append(all, r)
	}
	vs := make([]*viewer, 0, len(g.viewers))
	for _, v := range g.viewers {
		vs = append(vs, v)
	}
	g.mu.Unlock()
	for _, r := range all {
		r.ep.Close()
	}
	for _, v := range vs {
		v.close()
	}
}

func cors(w http.ResponseWriter) {
	h := w.Header()
	// Bearer tokens are not ambient credentials, so any origin may call (a browser
	// WHIP client on another host); nothing here reads cookies.
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Location, ETag, Link, Accept-Patch")
}

func (g *Gateway) options(w http.ResponseWriter, _ *http.Request) {
	httpapi.SetHeaders(w)
	cors(w)
	h := w.Header()
	h.Set("Allow", "POST, DELETE, PATCH, OPTIONS")
	h.Set("Accept-Post", "application/sdp")
	h.Set("Access-Control-Allow-Methods", "POST, DELETE, PATCH, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	if status >= 500 {
		g.log.Error("whip request failed", "method", r.Method, "path", r.URL.Path, "status", status, "msg", msg)
	} else {
		g.log.Info("whip request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr,
			"status", status, "code", code, "msg", msg)
	}
	httpapi.WriteError(w, status, code, msg)
}

// create joins the encoder to the meeting and answers its offer.
func (g *Gateway) create(w http.ResponseWriter, r *http.Request) {
	httpapi.SetHeaders(w)
	cors(w)
	meeting := r.PathValue("meeting")
	tok, offer, ok := g.readOffer(w, r, meeting)
	if !ok {
		return
	}
	if !sends(offer) {
		g.fail(w, r, http.StatusUnprocessableEntity, httpapi.CodeInvalid, "the offer sends no audio or video")
		return
	}
	if g.Count() >= g.cfg.MaxResources {
		g.fail(w, r, http.StatusServiceUnavailable, httpapi.CodeUnavailable, "too many WHIP sessions on this server")
		return
	}

	res := &resource{id: newID(), meeting: meeting, etag: `"` + newID() + `"`, ufrag: iceUfrag(offer),
		tokenHash: sha256.Sum256([]byte(tok))}
	res.ep = g.cfg.Signaling.Attach(signaling.AttachOptions{Remote: r.RemoteAddr, SendOnly: true,
		OnClose: func(code int, reason string) { g.closed(res, code, reason) }})
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	var joined protocol.Joined
	if st, code, msg, failed := ask(ctx, res.ep, protocol.KindJoin, protocol.Join{Token: tok}, &joined, "join reply"); failed {
		res.ep.Close()
		g.fail(w, r, st, code, msg)
		return
	}
	g.mu.Lock()
	g.resources[res.id] = res
	g.mu.Unlock()
	select {
	case <-res.ep.Done(): // left already (the meeting ended): closed found nothing to forget
		g.closed(res, 0, "")
	default:
	}
	var answer protocol.Answer
	if st, code, msg, failed := ask(ctx, res.ep, protocol.KindOffer, protocol.Offer{SDP: offer}, &answer, "answer"); failed {
		res.ep.Close()
		g.fail(w, r, st, code, msg)
		return
	}
	h := w.Header()
	for _, s := range joined.ICEServers {
		for _, u := range s.URLs {
			h.Add("Link", iceLink(u, s.Username, s.Credential))
		}
	}
	h.Set("Location", Prefix+meeting+"/"+res.id)
	h.Set("ETag", res.etag)
	h.Set("Accept-Patch", TrickleType)
	h.Set("Content-Type", "application/sdp")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer.SDP)
	g.log.Info("whip publisher joined", "meeting", meeting, "resource", res.id, "participant", joined.Self.ID,
		"site", joined.Self.Site)
}

// sends reports whether an offer has a media section that is not recvonly or inactive:
// WHIP publishes, and a receive-only offer is a WHEP player at the wrong URL.
func sends(sdp string) bool {
	var media, idle int
	var inMedia, kindOK bool
	flush := func() {
		if inMedia && kindOK {
			media++
		}
	}
	for _, line := range strings.Split(sdp, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, "m="):
			flush()
			inMedia = true
			kindOK = strings.HasPrefix(line, "m=audio ") || strings.HasPrefix(line, "m=video ")
		case inMedia && kindOK && (line == "a=recvonly" || line == "a=inactive"):
			idle++
		}
	}
	flush()
	return media > idle
}

// missingICE names what ICE and DTLS need that the offer lacks ("" if nothing).
func missingICE(sdp string) string {
	for _, a := range []string{"a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:"} {
		if !strings.Contains(sdp, "\n"+a) {
			return strings.TrimSuffix(strings.TrimPrefix(a, "a="), ":")
		}
	}
	return ""
}

func (g *Gateway) notAllowed(w http.ResponseWriter, r *http.Request) {
	httpapi.SetHeaders(w)
	w.Header().Set("Allow", "POST, OPTIONS")
	g.fail(w, r, http.StatusMethodNotAllowed, httpapi.CodeMethodNotAllowed, "a WHIP endpoint takes POST")
}

// ask sends ep a request of kind and decodes the reply into out (what names it in an
// error); failed says the request failed, and status, code and msg how to answer the
// HTTP client.
func ask(ctx context.Context, ep *signaling.Attached, kind protocol.Kind, data, out any, what string) (status int, code, msg string, failed bool) {
	env, err := ep.Request(ctx, kind, data)
	if status, code, msg, failed = failure(env, err); failed {
		return status, code, msg, true
	}
	if err := protocol.DecodeData(env, out); err != nil {
		return http.StatusInternalServerError, httpapi.CodeInternal, what + ": " + err.Error(), true
	}
	return 0, "", "", false
}

// failure maps a signaling reply or error onto an HTTP error; ok is false for success.
func failure(env protocol.Envelope, err error) (status int, code, msg string, ok bool) {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, httpapi.CodeUnavailable, "the bridge did not answer in time", true
	case err != nil:
		return http.StatusServiceUnavailable, httpapi.CodeUnavailable, err.Error(), true
	case env.Kind != protocol.KindError:
		return 0, "", "", false
	}
	var e protocol.Error
	if err := protocol.DecodeData(env, &e); err != nil {
		return http.StatusInternalServerError, httpapi.CodeInternal, "error reply: " + err.Error(), true
	}
	switch e.Code {
	case protocol.CodeUnauthorized:
		return http.StatusUnauthorized, httpapi.CodeUnauthorized, e.Message, true
	case protocol.CodeForbidden:
		return http.StatusForbidden, httpapi.CodeForbidden, e.Message, true
	case protocol.CodeBadSDP, protocol.CodeBadMessage:
		return http.StatusBadRequest, httpapi.CodeBadRequest, e.Message, true
	case protocol.CodeCapacity:
		return http.StatusServiceUnavailable, httpapi.CodeUnavailable, e.Message, true
	case protocol.CodeRateLimited:
		return http.StatusTooManyRequests, httpapi.CodeUnavailable, e.Message, true
	}
	return http.StatusInternalServerError, httpapi.CodeInternal, e.Message, true
}

// iceLink writes a TURN server as an RFC 9725 §4.6 Link header value.
func iceLink(url, user, cred string) string {
	v := "<" + url + `>; rel="ice-server"`
	if user != "" {
		v += fmt.Sprintf(`; username=%q; credential=%q; credential-type="password"`, user, cred)
	}
	return v
}

// sameToken checks that the request bears the token whose hash is want: a resource is
// ended or changed only by whoever created it.
func (g *Gateway) sameToken(w http.ResponseWriter, r *http.Request, want [32]byte) bool {
	tok, err := httpapi.BearerToken(r)
	if err != nil {
		g.fail(w, r, http.StatusUnauthorized, httpapi.CodeUnauthorized, err.Error())
		return false
	}
	if h := sha256.Sum256([]byte(tok)); subtle.ConstantTimeCompare(h[:], want[:]) != 1 {
		g.fail(w, r, http.StatusForbidden, httpapi.CodeForbidden, "not the token that created this session")
		return false
	}
	return true
}

func isSDP(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/sdp"
}

// closed forgets a resource whose endpoint left (DELETE, a failed connection, the
// meeting's end).
func (g *Gateway) closed(res *resource, code int, reason string) {
	g.mu.Lock()
	_, live := g.resources[res.id]
	delete(g.resources, res.id)
	g.mu.Unlock()
	if live {
		g.log.Info("whip publisher left", "meeting", res.meeting, "resource", res.id, "code", code, "reason", reason)
	}
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
