package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/internal/testapp"
	"github.com/cau-project/cau/internal/testkit"
)

// TestRecordFromCLI drives `cau meetings record|recordings` against a real server that
// records: the state, a start refused while nobody is connected (the API's reason
// shown), a bad verb, an empty record. app.TestRecordAMeetingOverTheAPI records a real
// meeting through the same API.
func TestRecordFromCLI(t *testing.T) {
	store, tree := testkit.Store(t, testkit.SiteTW)
	testkit.Schedule(t, store, tree, testkit.Hop("tw"))
	a, _ := testapp.Start(t, app.Config{ICETCPPort: -1, TokenKey: cliTestKey, Store: store,
		Tree: tree, RecordingsDir: filepath.Join(t.TempDir(), "recordings")})
	t.Setenv("CAU_TOKEN_KEY", cliTestKey)
	t.Setenv("CAU_TOKEN", "")
	t.Setenv("CAU_URL", a.URL())

	if code, out, errs := cau(t, "meetings", "record", "hop", "status"); code != 0 || out != "hop: not recording\n" {
		t.Errorf("status: %d %q %q", code, out, errs)
	}
	if code, _, errs := cau(t, "meetings", "record", "hop", "start"); code != 1 || !strings.Contains(errs, "not_connectable") ||
		!strings.Contains(errs, "nobody is connected") {
		t.Errorf("start with nobody there: %d %q", code, errs)
	}
	if code, _, errs := cau(t, "meetings", "record", "hop", "pause"); code != 2 || !strings.Contains(errs, "want start, stop or status") {
		t.Errorf("bad verb: %d %q", code, errs)
	}
	if code, out, errs := cau(t, "meetings", "recordings", "hop"); code != 0 || out != "hop: no recordings\n" {
		t.Errorf("recordings: %d %q %q", code, out, errs)
	}
	if code, _, errs := cau(t, "meetings", "download", "hop", "20261202T083000Z", "recording.json", "-o", filepath.Join(t.TempDir(), "x")); code != 1 ||
		!strings.Contains(errs, "not_found") {
		t.Errorf("download of a recording that does not exist: %d %q", code, errs)
	}
}
