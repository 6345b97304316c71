// Package web serves the pages a person opens in a browser: the landing page, the
// official's join page (/join/<meeting>), the meeting-room kiosk (/room/<endpoint>), the
// technicians' console (/console), the WHEP player (/watch/<meeting>) and their static
// assets. The assets are plain HTML, CSS
// and ES2020 modules embedded in the binary; there is no build step. The pages talk to
// signaling over /ws, the kiosk to /api/v1/endpoints/ and the console to
// /api/v1/monitor/, which this package does not serve.
//
// The modules, one job each: cau-client.js (the signaling session; with protocol.js,
// floor.js, requests.js, keepalive.js, media-link.js, publish.js, remote-streams.js,
// slot-streams.js), layout.js (which
// sites the meeting view shows large), join.js (the join page; with join-page.js,
// local-media.js, grid.js, controls.js, floor-roles.js, floor-panel.js), room.js (the
// kiosk), console.js and console-detail.js (the console; with console-recording.js),
// record.js (a meeting's record page), watch.js (a WHEP player, /watch/<meeting>),
// page-token.js (a page's ?token= kept in the tab), recording-api.js and
// recording-badge.js (the recording indicator of the join page and the kiosk), and
// i18n.js: the pages speak
// Vietnamese by default and English on request, every text from one catalogue per language
// (static/i18n/vi.json, en.json), every time in Vietnam time (Asia/Ho_Chi_Minh, 24-hour).
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

//go:embed static
var staticFS embed.FS

// ContentSecurityPolicy is sent with every response. Scripts, styles, fonts and
// connections (including the /ws WebSocket, which 'self' covers for ws: and wss:) come
// from this origin only; media may also come from blob: URLs. Nothing may frame the pages.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data: blob:; media-src 'self' blob: mediastream:; font-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; " +
	"frame-ancestors 'none'"

// MaxMeetingIDBytes bounds the meeting id in /join/{meeting}; longer ids get 404.
const MaxMeetingIDBytes = 128

// Cache policies. The assets are not content-hashed in their names, so browsers must
// revalidate them (cheaply: each carries a strong ETag and a match answers 304); the
// pages themselves are never stored, because their URLs carry tokens.
const (
	cacheAssets = "no-cache"
	cachePages  = "no-store"
)

// asset is one embedded file, ready to serve.
type asset struct {
	name  string
	body  []byte
	ctype string
	etag  string
}

// contentTypes maps the extensions shipped under static/ to their types. The table is
// explicit so that the served type does not depend on the host's /etc/mime.types.
var contentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".json":  "application/json",
	".txt":   "text/plain; charset=utf-8",
	".woff2": "font/woff2",
}

// loadAssets reads every embedded file once. A file with an unknown extension is a
// programming error caught by the tests, so it panics.
func loadAssets() map[string]*asset {
	out := map[string]*asset{}
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := staticFS.ReadFile(p)
		if err == nil && path.Ext(p) == ".html" {
			body, err = renderPage(p, body)
		}
		if err != nil {
			return err
		}
		ctype, ok := contentTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("web: no content type for %s", p)
		}
		sum := sha256.Sum256(body)
		name := strings.TrimPrefix(p, "static/")
		out[name] = &asset{name: name, body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		panic(err)
	}
	return out
}

var assets = loadAssets()

// Handler returns the handler for the landing page (GET /), the join page
// (GET /join/{meeting}), the meeting-room kiosk (GET /room/{endpoint}), the console
// (GET /console; its data, from package monitor, needs a technician's token) and the
// assets (GET /static/...). Every response carries the security headers above; anything
// else is 404. Mount it at "/" beside /ws and the API.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", page("index.html"))
	mux.HandleFunc("GET /join/{meeting}", idPage("meeting", "join.html"))
	// The meeting-room kiosk: its device token (in the query) reads the plan from the API.
	mux.HandleFunc("GET /room/{endpoint}", idPage("endpoint", "room.html"))
	mux.HandleFunc("GET /console", page("console.html"))
	// A meeting's record (its recordings): the page's API token (admin or the meeting's
	// chair) reads and controls them through /api/v1/meetings/{id}/recording*.
	mux.HandleFunc("GET /record/{meeting}", idPage("meeting", "record.html"))
	// A WHEP player for a meeting: its join token (in the query) opens one /whep session.
	mux.HandleFunc("GET /watch/{meeting}", idPage("meeting", "watch.html"))
	mux.HandleFunc("GET /static/{file...}", serveAsset)
	return securityHeaders(mux)
}

// page serves one HTML asset as a page.
func page(name string) http.HandlerFunc {
	a := assets[name]
	if a == nil {
		panic("web: missing page " + name)
	}
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", a.ctype)
		h.Set("Cache-Control", cachePages)
		http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
	}
}

// idPage serves the page name at a path whose wildcard param is an id (a meeting's, an
// endpoint's): 404 for an id that cannot be one (validMeetingID).
func idPage(param, name string) http.HandlerFunc {
	serve := page(name)
	return func(w http.ResponseWriter, r *http.Request) {
		if !validMeetingID(r.PathValue(param)) {
			http.NotFound(w, r)
			return
		}
		serve(w, r)
	}
}

func serveAsset(w http.ResponseWriter, r *http.Request) {
	a := assets[r.PathValue("file")]
	if a == nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("Cache-Control", cacheAssets)
	h.Set("ETag", a.etag)
	// ServeContent answers If-None-Match with 304, handles HEAD and ranges.
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
}

// validMeetingID accepts ids of 1..MaxMeetingIDBytes bytes of valid UTF-8 without
// control or space characters. The id is only shown by the page (the token decides the
// meeting), so this merely keeps junk URLs from looking like join pages.
func validMeetingID(id string) bool {
	if id == "" || len(id) > MaxMeetingIDBytes || !utf8.ValidString(id) {
		return false
	}
	for _, c := range id {
		if unicode.IsControl(c) || unicode.IsSpace(c) {
			return false
		}
	}
	return true
}

// securityHeaders sets the headers every page and asset needs. Tokens travel in join
// URLs, so no Referer may leak them to another site.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(self), microphone=(self), display-capture=(self), geolocation=()")
		next.ServeHTTP(w, r)
	})
}
