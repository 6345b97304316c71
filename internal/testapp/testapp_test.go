package testapp_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/internal/testapp"
)

// TestStartServes: the app answers on the loopback port Start picked and logs into the
// buffer returned (TestMain checks that it stopped with the test).
func TestStartServes(t *testing.T) {
	a, logs := testapp.Start(t, app.Config{Dev: true, ICETCPPort: -1})
	url := a.URL()
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Errorf("URL %s, want a loopback port", url)
	}
	res, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || string(body) != "ok\n" {
		t.Errorf("/healthz: %d %q", res.StatusCode, body)
	}
	if !strings.Contains(logs.String(), "level=INFO") {
		t.Errorf("no info line in the server log:\n%s", logs.String())
	}
	http.DefaultClient.CloseIdleConnections()
}
