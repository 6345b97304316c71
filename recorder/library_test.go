package recorder

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/jsonfile"
)

// TestLibraryRetention makes recordings of several ages the way the recorder leaves them
// (a manifest from Start/Stop) and checks listing, bad names and expiry.
func TestLibraryRetention(t *testing.T) {
	lib := Library{Root: t.TempDir()}
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	mk := func(meeting string, age time.Duration, stop bool) string {
		t.Helper()
		dir, id, err := lib.NewDir(meeting, now.Add(-age))
		if err != nil {
			t.Fatal(err)
		}
		r := startRecording(t, Config{Dir: dir, Meeting: meeting})
		if stop {
			stopRecording(t, r)
		}
		// Age the manifest as if written then.
		m, _ := ReadManifest(dir)
		m.Started = now.Add(-age)
		if stop {
			m.Stopped = m.Started.Add(time.Hour)
		}
		if err := jsonfile.Write(dir, ManifestName, m); err != nil {
			t.Fatal(err)
		}
		return id
	}
	old := mk("m1", 40*24*time.Hour, true)
	recent := mk("m1", 2*24*time.Hour, true)
	crashed := mk("m2", 50*24*time.Hour, false) // never stopped: a crash long ago
	live := mk("m3", 45*24*time.Hour, false)

	if rs, err := lib.List("m1"); err != nil || len(rs) != 2 || rs[0].ID != old || rs[1].ID != recent {
		t.Fatalf("List(m1) = %+v, %v", rs, err)
	}
	for _, bad := range []string{"../m1", "..", "m1/x", "", ".hidden"} {
		if _, err := lib.Dir(bad, old); !errors.Is(err, ErrBadName) {
			t.Errorf("Dir(%q) err = %v", bad, err)
		}
		if _, err := lib.File("m1", old, bad); !errors.Is(err, ErrBadName) {
			t.Errorf("File(%q) err = %v", bad, err)
		}
	}
	if _, err := lib.File("m1", old, "nothing.webm"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing file err = %v", err)
	}
	if gone, err := lib.Expire(now, 0, nil); err != nil || len(gone) != 0 {
		t.Fatalf("maxAge 0 deleted %+v, %v", gone, err)
	}
	gone, err := lib.Expire(now, 30*24*time.Hour, func(meeting, id string) bool { return id == live })
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range gone {
		ids = append(ids, e.Meeting+"/"+e.ID)
	}
	if len(ids) != 2 || ids[0] != "m1/"+old || ids[1] != "m2/"+crashed {
		t.Fatalf("expired %v", ids)
	}
	all, err := lib.All()
	if err != nil || len(all) != 2 {
		t.Fatalf("left %+v, %v", all, err)
	}
	if _, err := os.Stat(filepath.Join(lib.Root, "m2")); !os.IsNotExist(err) {
		t.Errorf("empty meeting directory left behind: %v", err)
	}
}
