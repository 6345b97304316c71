package testbrowser_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/testbrowser"
	"github.com/cau-project/cau/internal/testutil"
)

const page = `<!doctype html><title>ready</title>
<button id="go" onclick="n++; console.log('clicked ' + n); document.title = 'clicked'">go</button>
<script>var n = 0; console.log('loaded in ' + navigator.languages[0]);</script>`

// TestDrivesAPage: a started Chromium opens a page in the language asked for, clicks,
// evaluates and awaits JavaScript, takes a screenshot, opens a second tab with a page of
// its own, and copies both tabs' consoles to the log.
func TestDrivesAPage(t *testing.T) {
	testbrowser.Require(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(page))
	}))
	t.Cleanup(srv.Close) // after the browser's cleanup, which closes its connections
	log := &testbrowser.Log{}
	b := testbrowser.MustStart(t, testbrowser.Options{Log: log, Lang: "vi-VN,vi", Width: 640, Height: 480}, "first")[0]

	if err := b.Open(srv.URL, "page loaded", "document.title === 'ready'", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if lang := testbrowser.Eval[string](t, b, "navigator.languages[0]"); lang != "vi-VN" {
		t.Errorf("navigator.languages[0] = %q, want vi-VN (Options.Lang)", lang)
	}
	if err := b.Click("go"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor("the click", "document.title === 'clicked'", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := testbrowser.Eval[int](t, b, "n"); n != 1 {
		t.Errorf("n = %d after one click, want 1", n)
	}
	if w, err := testbrowser.Await[int](b, "new Promise(r => setTimeout(() => r(innerWidth), 10))", 5*time.Second); err != nil || w != 640 {
		t.Errorf("awaited innerWidth = %d, %v; want 640 (Options.Width)", w, err)
	}
	shot, err := b.Screenshot(t.TempDir(), "clicked")
	if err != nil {
		t.Fatal(err)
	}
	if png, err := os.ReadFile(shot); err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("screenshot %s is not a PNG: %v", shot, err)
	}

	tab := b.Tab(t, "second")
	if err := tab.Open(srv.URL, "page loaded", "document.title === 'ready'", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := testbrowser.Eval[int](t, tab, "n"); n != 0 {
		t.Errorf("the second tab's page counted %d clicks, want 0 (its own page)", n)
	}
	tab.Close()

	testutil.Eventually(t, 10*time.Second, func() string {
		s := log.String()
		for _, want := range []string{"[first console]", "clicked 1", "[second console]", "loaded in vi-VN"} {
			if !strings.Contains(s, want) {
				return "the log lacks " + want + ":\n" + s
			}
		}
		return ""
	})
}
