package signaling

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/auth"
)

// TestForwardedHeader checks what a node accepts as "forwarded for a client": only a
// header signed with a token key it has (current or previous), fresh, and untouched.
func TestForwardedHeader(t *testing.T) {
	keys := auth.Keys{Current: []byte("node-key-0123456789-0123456789-01")}
	rotated := auth.Keys{Current: []byte("new-key-0123456789-0123456789-012"), Previous: [][]byte{keys.Current}}
	now := time.Now()
	req := func(v string) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "http://node/ws", nil)
		if v != "" {
			r.Header.Set(headerForwarded, v)
		}
		return r
	}
	good := forwardedHeader(keys, "203.0.113.7", now)
	for _, c := range []struct {
		name   string
		header string
		keys   auth.Keys
		at     time.Time
		want   string
	}{
		{"signed", good, keys, now, "203.0.113.7"},
		{"signed with the previous key", good, rotated, now, "203.0.113.7"},
		{"absent", "", keys, now, ""},
		{"another host", strings.Replace(good, "203.0.113.7", "198.51.100.1", 1), keys, now, ""},
		{"stale", good, keys, now.Add(2 * forwardSkew), ""},
		{"unknown key", forwardedHeader(auth.Keys{Current: []byte("other-key-0123456789-0123456789-0")}, "203.0.113.7", now), keys, now, ""},
		{"garbage", "a;b;c;d", keys, now, ""},
		{"bad time", "203.0.113.7;x;00", keys, now, ""},
	} {
		host, ok := forwardedHost(req(c.header), c.keys, c.at)
		if host != c.want || ok != (c.want != "") {
			t.Errorf("%s: forwardedHost = %q, %v; want %q", c.name, host, ok, c.want)
		}
	}
}
