package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRoutes(t *testing.T) {
	h := Handler()
	cases := []struct {
		name, method, target string
		status               int
		ctype                string
		cache                string
		contains             string
	}{
		{"landing", "GET", "/", 200, "text/html; charset=utf-8", "no-store", `data-i18n="landing.heading"`},
		{"join", "GET", "/join/giao-ban-2026", 200, "text/html; charset=utf-8", "no-store", `src="/static/join.js"`},
		{"join with token", "GET", "/join/m1?token=a.b.c&autojoin=1&name=X", 200, "text/html; charset=utf-8", "no-store", `id="grid"`},
		{"join vietnamese id", "GET", "/join/h%E1%BB%8Dp-t%E1%BB%89nh", 200, "text/html; charset=utf-8", "no-store", "<!doctype html>"},
		{"client module", "GET", "/static/cau-client.js", 200, "text/javascript; charset=utf-8", "no-cache", "export class CauClient"},
		{"page module", "GET", "/static/join.js", 200, "text/javascript; charset=utf-8", "no-cache", "window.cauState"},
		{"style", "GET", "/static/style.css", 200, "text/css; charset=utf-8", "no-cache", ".tile"},
		{"icon", "GET", "/static/favicon.svg", 200, "image/svg+xml", "no-cache", "<svg"},
		{"join html as asset", "GET", "/static/join.html", 200, "text/html; charset=utf-8", "no-cache", "tile-template"},
		{"head", "HEAD", "/static/style.css", 200, "text/css; charset=utf-8", "no-cache", ""},
		{"record page", "GET", "/record/giao-ban-2026", 200, "text/html; charset=utf-8", "no-store", `src="/static/record.js"`},
		{"missing asset", "GET", "/static/nope.js", 404, "", "", ""},
		{"static dir listing", "GET", "/static/", 404, "", "", ""},
		// ServeMux cleans the path first: /static/../web.go redirects to /web.go, a 404.
		{"traversal", "GET", "/static/../web.go", 307, "", "", ""},
		{"traversal target", "GET", "/web.go", 404, "", "", ""},
		{"encoded traversal", "GET", "/static/%2e%2e/web.go", 404, "", "", ""},
		{"join without meeting", "GET", "/join/", 404, "", "", ""},
		{"join nested", "GET", "/join/m1/extra", 404, "", "", ""},
		{"join id too long", "GET", "/join/" + strings.Repeat("a", MaxMeetingIDBytes+1), 404, "", "", ""},
		{"join id with space", "GET", "/join/a%20b", 404, "", "", ""},
		{"join id with control", "GET", "/join/a%07b", 404, "", "", ""},
		{"unknown path", "GET", "/nope", 404, "", "", ""},
		{"post landing", "POST", "/", 405, "", "", ""},
		{"post asset", "POST", "/static/style.css", 405, "", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := get(t, h, c.method, c.target, nil)
			b := body(t, res)
			if res.StatusCode != c.status {
				t.Fatalf("%s %s: status %d, want %d (body %.80q)", c.method, c.target, res.StatusCode, c.status, b)
			}
			if c.ctype != "" {
				if got := res.Header.Get("Content-Type"); got != c.ctype {
					t.Errorf("Content-Type %q, want %q", got, c.ctype)
				}
			}
			if c.cache != "" {
				if got := res.Header.Get("Cache-Control"); got != c.cache {
					t.Errorf("Cache-Control %q, want %q", got, c.cache)
				}
			}
			if c.contains != "" && !strings.Contains(b, c.contains) {
				t.Errorf("body does not contain %q", c.contains)
			}
			if c.method == "HEAD" && b != "" {
				t.Errorf("HEAD returned a body of %d bytes", len(b))
			}
		})
	}
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	h := Handler()
	for _, target := range []string{"/", "/join/m1?token=x", "/static/join.js", "/static/missing.css", "/nope"} {
		res := get(t, h, "GET", target, nil)
		want := map[string]string{
			"Content-Security-Policy": ContentSecurityPolicy,
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
			"X-Frame-Options":         "DENY",
		}
		for k, v := range want {
			if got := res.Header.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", target, k, got, v)
			}
		}
	}
}

func TestContentSecurityPolicy(t *testing.T) {
	directives := map[string]string{}
	for _, d := range strings.Split(ContentSecurityPolicy, ";") {
		f := strings.Fields(d)
		if len(f) == 0 {
			continue
		}
		directives[f[0]] = strings.Join(f[1:], " ")
	}
	want := map[string]string{
		"default-src":     "'self'",
		"script-src":      "'self'",
		"style-src":       "'self'",
		"connect-src":     "'self'", // covers ws: and wss: to this host
		"object-src":      "'none'",
		"frame-ancestors": "'none'",
	}
	for k, v := range want {
		if directives[k] != v {
			t.Errorf("CSP %s = %q, want %q", k, directives[k], v)
		}
	}
	if !strings.Contains(directives["media-src"], "blob:") {
		t.Errorf("CSP media-src %q lacks blob:", directives["media-src"])
	}
	if strings.Contains(ContentSecurityPolicy, "unsafe-inline") || strings.Contains(ContentSecurityPolicy, "unsafe-eval") {
		t.Error("CSP allows unsafe-inline or unsafe-eval")
	}
}

// The CSP forbids inline scripts, inline styles and style attributes, so the pages must
// not use them: they would silently break in the browser.
func TestPagesNeedNoInlineCode(t *testing.T) {
	inlineScript := regexp.MustCompile(`<script(\s[^>]*)?>\s*[^<\s]`)
	for _, name := range []string{"index.html", "join.html", "room.html", "console.html"} {
		a := assets[name]
		if a == nil {
			t.Fatalf("missing %s", name)
		}
		html := string(a.body)
		if inlineScript.MatchString(html) {
			t.Errorf("%s has an inline script", name)
		}
		if strings.Contains(html, "<style") {
			t.Errorf("%s has a <style> element", name)
		}
		if regexp.MustCompile(`\sstyle=`).MatchString(html) {
			t.Errorf("%s has a style attribute", name)
		}
		if regexp.MustCompile(`\son[a-z]+=`).MatchString(html) {
			t.Errorf("%s has an inline event handler", name)
		}
	}
}

func TestAssetETag(t *testing.T) {
	h := Handler()
	res := get(t, h, "GET", "/static/style.css", nil)
	etag := res.Header.Get("ETag")
	if !regexp.MustCompile(`^"[0-9a-f]{24}"$`).MatchString(etag) {
		t.Fatalf("ETag %q is not a strong hash tag", etag)
	}
	res = get(t, h, "GET", "/static/style.css", map[string]string{"If-None-Match": etag})
	if res.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match with the current ETag: status %d, want 304", res.StatusCode)
	}
	res = get(t, h, "GET", "/static/style.css", map[string]string{"If-None-Match": `"stale"`})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("If-None-Match with a stale ETag: status %d, want 200", res.StatusCode)
	}
	// Different files, different tags.
	if other := get(t, h, "GET", "/static/join.js", nil).Header.Get("ETag"); other == etag {
		t.Errorf("join.js and style.css share ETag %s", etag)
	}
}

// Every embedded file has a content type, and every asset a page or module references
// exists.
func TestAssetsComplete(t *testing.T) {
	ref := regexp.MustCompile(`(?:href|src)="/static/([^"]+)"|(?:from|import) '\./([^']+)'`)
	for name, a := range assets {
		if a.ctype == "" {
			t.Errorf("%s has no content type", name)
		}
		if !strings.HasSuffix(name, ".html") && !strings.HasSuffix(name, ".js") {
			continue
		}
		for _, m := range ref.FindAllStringSubmatch(string(a.body), -1) {
			file := m[1] + m[2]
			if assets[file] == nil {
				t.Errorf("%s references missing asset %s", name, file)
			}
		}
	}
}

// The pages' modules stay small enough to read: one job per file (see STYLE.md).
func TestModulesStaySmall(t *testing.T) {
	const maxLines = 600
	for name, a := range assets {
		if !strings.HasSuffix(name, ".js") {
			continue
		}
		if n := strings.Count(string(a.body), "\n"); n > maxLines {
			t.Errorf("%s has %d lines, more than %d: split it by job", name, n, maxLines)
		}
	}
}

func TestValidMeetingID(t *testing.T) {
	for id, want := range map[string]bool{
		"m1": true, "giao-ban_2026.11": true, "họp-tỉnh": true,
		"": false, "a b": false, "a\tb": false, "a\x00b": false, "\xff": false,
		strings.Repeat("x", MaxMeetingIDBytes): true, strings.Repeat("x", MaxMeetingIDBytes+1): false,
	} {
		if got := validMeetingID(id); got != want {
			t.Errorf("validMeetingID(%q) = %v, want %v", id, got, want)
		}
	}
}
