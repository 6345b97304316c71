package profiling

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// The port serves the index, a heap profile and a short CPU profile; the mutex and block
// profiles are switched on.
func TestServesProfiles(t *testing.T) {
	srv, addr, err := Serve("127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for path, want := range map[string]string{
		"/debug/pprof/":                  "mutex",
		"/debug/pprof/heap?debug=1":      "heap profile",
		"/debug/pprof/mutex?debug=1":     "cycles/second",
		"/debug/pprof/block?debug=1":     "cycles/second",
		"/debug/pprof/profile?seconds=1": "", // binary protobuf: non-empty is enough
	} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(body) == 0 || !strings.Contains(string(body), want) {
			t.Errorf("%s: status %d, %d bytes, want %q in it", path, resp.StatusCode, len(body), want)
		}
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/metrics on the profiling port: status %d, want 404 (profiles only)", resp.StatusCode)
	}
}
