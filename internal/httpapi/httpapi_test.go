package httpapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestBearerToken(t *testing.T) {
	for _, c := range []struct {
		header, token string
		err           error
	}{
		{"Bearer abc.def", "abc.def", nil},
		{"bearer  abc ", "abc", nil},
		{"", "", ErrNoToken},
		{"Bearer", "", ErrBadAuthorization},
		{"Bearer   ", "", ErrBadAuthorization},
		{"Basic dXNlcjpwYXNz", "", ErrBadAuthorization},
		{"abc.def", "", ErrBadAuthorization},
	} {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/me", nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		tok, err := BearerToken(r)
		if tok != c.token || !errors.Is(err, c.err) {
			t.Errorf("%q: %q, %v; want %q, %v", c.header, tok, err, c.token, c.err)
		}
	}
}

// FuzzBearerToken: any header gives a token without surrounding space, or an error.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer x", "bearer\tx", "Bearer ", " Bearer x", "Bearer x y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header["Authorization"] = []string{h}
		tok, err := BearerToken(r)
		if (err == nil) == (tok == "") || tok != strings.TrimSpace(tok) {
			t.Errorf("%q: token %q, err %v", h, tok, err)
		}
	})
}

// TestErrorRoundTrip: what WriteError writes, ParseError reads back; a body that is not
// the error shape (a proxy's page) still gives the status and the text.
func TestErrorRoundTrip(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, http.StatusUnauthorized, CodeUnauthorized, "invalid or expired token")
	e := ParseError(rec.Code, rec.Body.Bytes())
	if *e != (Error{Status: 401, Code: CodeUnauthorized, Message: "invalid or expired token"}) {
		t.Errorf("round trip: %+v from %s", e, rec.Body)
	}
	if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") ||
		!strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Errorf("headers %v", rec.Header())
	}
	if e := ParseError(502, []byte("<html>Bad Gateway</html>\n")); e.Code != "http" || e.Message != "<html>Bad Gateway</html>" {
		t.Errorf("not JSON: %+v", e)
	}
	if got := Errorf(409, CodeConflict, "site %s", "gl").Error(); got != "conflict: site gl (HTTP 409)" {
		t.Errorf("Error() = %q", got)
	}
}
