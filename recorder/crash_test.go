package recorder

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/testmedia"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/sfu"
)

// crashDirEnv tells the test binary, started again by TestCrashLeavesPlayableFiles, to
// act as the server being killed: it records into that directory until killed.
const crashDirEnv = "CAU_RECORDER_CRASH_DIR"

// TestCrashLeavesPlayableFiles kills (SIGKILL) a process in the middle of a recording and
// checks that the files it wrote play: the manifest names them, ffmpeg decodes them
// without an error, and they hold all but the last seconds before the kill (what the
// recorder buffers: one flush interval plus the interleaving window).
func TestCrashLeavesPlayableFiles(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		recordUntilKilled(t, dir)
		return
	}
	testmedia.Need(t)
	testmedia.MakeClip(t, 320, 240) // encode outside the child's time budget
	dir := filepath.Join(t.TempDir(), "rec")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashLeavesPlayableFiles$", "-test.v")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	cmd.Stderr, cmd.Stdout = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var started time.Time
	testutil.Eventually(t, 60*time.Second, func() string {
		m, err := ReadManifest(dir)
		if err != nil || len(m.Files) == 0 {
			return "no file in the manifest yet"
		}
		started = m.Files[0].Start
		return ""
	})
	time.Sleep(6 * time.Second)
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred code runs
		t.Fatal(err)
	}
	killedAt := time.Now()
	_ = cmd.Wait()

	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.State != StateRecording || len(m.Files) != 1 || m.Files[0].Complete {
		t.Fatalf("manifest after a crash: %+v", m)
	}
	path := filepath.Join(dir, m.Files[0].Name)
	if out := testmedia.DecodeErrors(t, path); out != "" {
		t.Errorf("ffmpeg decode errors in the crashed file:\n%s", out)
	}
	p := testmedia.ProbeFile(t, path)
	v, okV := p.Stream("video")
	a, okA := p.Stream("audio")
	if !okV || !okA || v.Frames == 0 || a.Frames == 0 {
		t.Fatalf("streams %+v", p.Streams)
	}
	played := testmedia.LastPacket(t, path)
	lived := killedAt.Sub(started).Seconds()
	t.Logf("killed %.1f s into the file; %.2f s playable (%d video, %d audio frames)", lived, played, v.Frames, a.Frames)
	if played < lived-3 {
		t.Errorf("only %.2f s of %.1f s survived the crash", played, lived)
	}
}

// recordUntilKilled is the child process: a bridge, a publisher and a recording that
// runs until the parent kills the process.
func recordUntilKilled(t *testing.T, dir string) {
	clip := testmedia.MakeClip(t, 320, 240)
	b := testmedia.NewBridge(t)
	pub := testmedia.NewPublisher(t, "site-a", 0)
	c := testmedia.Connect(t, b, pub, "site-a")
	pub.Start(func(int) *Clip { return clip })
	c.WaitTracks(t)
	rec := startRecording(t, Config{Dir: dir, Meeting: "crash", Logger: testmedia.Logger()})
	for _, u := range []*sfu.UpTrack{c.Video, c.Audio} {
		if err := rec.AddTrack(Source{Name: "site-a", Site: "site-a"}, u); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(5 * time.Minute) // the parent kills us long before
	t.Error("not killed")
}
