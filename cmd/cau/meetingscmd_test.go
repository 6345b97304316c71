package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/internal/testapp"
	"github.com/cau-project/cau/internal/testkit"
	"github.com/cau-project/cau/rooms"
)

const cliTestKey = "cli-test-signing-key-0123456789abcdef"

// startCau runs a real server (bridge, signaling, REST API) on loopback over an empty
// embedded store, as `cau serve` would.
func startCau(t *testing.T) (*app.App, rooms.Store) {
	t.Helper()
	store, _ := testkit.Store(t)
	a, _ := testapp.Start(t, app.Config{ICETCPPort: -1, TokenKey: cliTestKey, Store: store})
	return a, store
}

// cau runs the command line and returns its exit code and output.
func cau(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	code := run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestProvincialMeetingFromCLI is the goal: an operator imports Gia Lai's
// 258-site tree and schedules a provincial meeting over all of it from the CLI, against
// a running server; conflicts are refused clearly; the roll call comes out as CSV.
func TestProvincialMeetingFromCLI(t *testing.T) {
	a, store := startCau(t)
	t.Setenv("CAU_TOKEN_KEY", cliTestKey)
	t.Setenv("CAU_TOKEN", "")
	t.Setenv("CAU_URL", a.URL())

	code, out, errs := cau(t, "sites", "import", "../../deploy/examples/gia-lai.yaml")
	if code != 0 || !strings.Contains(out, "imported 258 sites under gl: 21 province, 17 district, 220 commune") {
		t.Fatalf("import: %d %q %q", code, out, errs)
	}
	// Every site has a meeting-room device, as in the province's system.
	ctx := context.Background()
	tree, err := rooms.StoredTree(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range tree.Sites() {
		if err := store.PutEndpoint(ctx, rooms.Endpoint{ID: "room-" + s.ID, Name: "Phòng họp " + s.Name, Site: s.ID, Kind: rooms.KindRoom}); err != nil {
			t.Fatal(err)
		}
	}

	start := time.Now().In(rooms.Zone()).Add(2 * time.Hour).Truncate(time.Minute)
	code, out, errs = cau(t, "meetings", "schedule", "--title", "Hội nghị trực tuyến toàn tỉnh",
		"--select", "gl", "--start", start.Format("2006-01-02 15:04"), "--duration", "2h", "--mode", "directed",
		"--url", a.URL()) // flags after others, and --url given twice: the last wins
	if code != 0 {
		t.Fatalf("schedule: %d %q %q", code, out, errs)
	}
	m := regexp.MustCompile(`^scheduled (m-[0-9a-f]+) "Hội nghị trực tuyến toàn tỉnh": 258 sites`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("schedule output %q", out)
	}
	id := m[1]
	if !strings.Contains(out, start.Format("2006-01-02 15:04")+" (UTC+07:00)") || !strings.Contains(out, "directed mode") {
		t.Errorf("schedule output %q: want the start in Vietnam time and the mode", out)
	}
	stored, err := store.Meeting(ctx, id)
	if err != nil || len(stored.Sites) != 258 || stored.ChairSite != "gl" || !stored.Start.Equal(start) {
		t.Fatalf("stored meeting: %+v %v", stored, err)
	}

	code, out, _ = cau(t, "meetings", "list")
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "258") {
		t.Errorf("list: %d %q", code, out)
	}

	// A commune already booked: refused with the other meeting named.
	code, _, errs = cau(t, "meetings", "schedule", "--title", "Họp xã", "--site", "gl-d01-c01",
		"--start", start.Add(time.Hour).Format(time.RFC3339), "--end", start.Add(3*time.Hour).Format(time.RFC3339))
	if code != 1 || !strings.Contains(errs, "conflict") || !strings.Contains(errs, id) || !strings.Contains(errs, "gl-d01-c01") {
		t.Errorf("conflict: %d %q", code, errs)
	}
	// A district's own meeting after the provincial one is fine.
	code, out, errs = cau(t, "meetings", "schedule", "--title", "Họp huyện", "--select", "gl-d01:commune",
		"--exclude", "gl-d01-c02", "--start", start.Add(3*time.Hour).Format(time.RFC3339), "--duration", "1h", "--test-window", "30m")
	if code != 0 || !strings.Contains(out, "sites connect from "+start.Add(150*time.Minute).Format("15:04")) {
		t.Errorf("district meeting: %d %q %q", code, out, errs)
	}

	// Attendance from the lead's signaling side, then the roll call as CSV.
	for i, site := range []string{"gl", "gl-d01", "gl-d01-c01"} {
		if err := store.AppendAttendance(ctx, rooms.AttendanceEvent{Time: start.Add(time.Duration(i) * time.Minute),
			MeetingID: id, Site: site, Endpoint: "room-" + site, Kind: rooms.EventConnected}); err != nil {
			t.Fatal(err)
		}
	}
	csvPath := filepath.Join(t.TempDir(), "rollcall.csv")
	code, out, errs = cau(t, "meetings", "rollcall", id, "--csv", "-o", csvPath)
	if code != 0 || !strings.Contains(out, "wrote "+csvPath) {
		t.Fatalf("rollcall --csv: %d %q %q", code, out, errs)
	}
	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(rows) != 259 || rows[0][0] != "site" || rows[1][0] != "gl" || rows[1][3] != "true" {
		t.Fatalf("roll call CSV: %d rows, %v", len(rows), err)
	}
	code, out, _ = cau(t, "meetings", "rollcall", id)
	if code != 0 || !strings.Contains(out, "3 of 258 sites attended") {
		t.Errorf("rollcall table: %d %q", code, out)
	}

	// End, then cancel is refused; export the tree and read it back.
	if code, out, errs = cau(t, "meetings", "end", id); code != 0 || !strings.Contains(out, "ended") {
		t.Errorf("end: %d %q %q", code, out, errs)
	}
	if code, _, errs = cau(t, "meetings", "cancel", id); code != 1 || !strings.Contains(errs, "meeting_over") {
		t.Errorf("cancel after end: %d %q", code, errs)
	}
	yamlPath := filepath.Join(t.TempDir(), "sites.yaml")
	if code, _, errs = cau(t, "sites", "export", "-o", yamlPath); code != 0 {
		t.Fatalf("export: %d %q", code, errs)
	}
	back, err := rooms.LoadTreeFile(yamlPath)
	if err != nil || back.Len() != 258 || back.Name("gl-d01-c01") != tree.Name("gl-d01-c01") {
		t.Errorf("exported tree: %v", err)
	}
	if code, out, _ = cau(t, "sites", "list"); code != 0 || !strings.Contains(out, "258 sites") {
		t.Errorf("sites list: %d %q", code, out)
	}
}

// TestCLIUsageAndCredentials: mistakes exit 2, missing or wrong credentials say so.
func TestCLIUsageAndCredentials(t *testing.T) {
	a, _ := startCau(t)
	t.Setenv("CAU_URL", a.URL())
	t.Setenv("CAU_TOKEN_KEY", "")
	t.Setenv("CAU_TOKEN", "")
	for _, args := range [][]string{
		{"meetings"}, {"meetings", "frobnicate"}, {"meetings", "schedule", "--title", "x"},
		{"meetings", "cancel"}, {"sites", "import"}, {"meetings", "schedule", "--bogus"},
	} {
		if code, _, _ := cau(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, errs := cau(t, "meetings", "list"); code != 1 || !strings.Contains(errs, "no credentials") {
		t.Errorf("no credentials: %d %q", code, errs)
	}
	if code, _, errs := cau(t, "meetings", "list", "--dev"); code != 1 || !strings.Contains(errs, "unauthorized") {
		t.Errorf("dev key against a real key: %d %q", code, errs)
	}
	t.Setenv("CAU_TOKEN", "not-a-token")
	if code, _, errs := cau(t, "sites", "list"); code != 1 || !strings.Contains(errs, "HTTP 401") {
		t.Errorf("bad token: %d %q", code, errs)
	}
	if code, out, _ := cau(t, "meetings", "help"); code != 0 || !strings.Contains(out, "rollcall") {
		t.Errorf("help: %d %q", code, out)
	}
	if code, _, errs := cau(t, "sites", "import", "../../deploy/examples/nope.yaml"); code != 1 || !strings.Contains(errs, "nope.yaml") {
		t.Errorf("missing file: %d %q", code, errs)
	}
}
