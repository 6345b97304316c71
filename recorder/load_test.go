package recorder

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/testmedia"
)

// cpuTime is the process's user+system CPU time so far.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestEightRecordingsKeepUp runs eight recordings at once on one bridge, each of two
// sites (camera and microphone) out of four publishing sites, so 32 recorded streams, and
// checks that the recorder drops no packet and every file decodes. It logs the CPU one
// recorded stream costs: the process's CPU over a window with recording, minus the same
// window just before without it (publishers and bridge alone), divided by the streams.
// Four publishers rather than eight keep the test's own load (pion endpoints in the same
// process) below the recorder's.
//
// make test runs it under the race detector (2 publishers, an 8 s window: about 25 s);
// make soak runs it without, for the CPU figure (4 publishers, 20 s).
func TestEightRecordingsKeepUp(t *testing.T) {
	const n = 8
	sites := 4
	if raceEnabled {
		sites = 2 // the race detector slows the publishers more than the recorder
	}
	window := 20 * time.Second
	if testing.Short() || raceEnabled {
		window = 8 * time.Second // the figure means little under the race detector
	}
	clip := testmedia.MakeClip(t, 320, 240)
	b := testmedia.NewBridge(t)
	conns := make([]*testmedia.Connected, sites)
	for i := range sites {
		name := fmt.Sprintf("site-%d", i)
		conns[i] = testmedia.Connect(t, b, testmedia.NewPublisher(t, name, 0), name)
		conns[i].Pub.Start(func(int) *Clip { return clip })
	}
	for _, c := range conns {
		c.WaitTracks(t)
	}
	time.Sleep(2 * time.Second) // let the connections settle before measuring

	cpu0 := cpuTime(t)
	time.Sleep(window)
	reference := cpuTime(t) - cpu0

	// The recorder's own warnings (not pion's) show in the test output.
	warn := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	recs := make([]*Recording, n)
	for i := range n {
		r, err := Start(Config{Dir: filepath.Join(t.TempDir(), fmt.Sprint(i)), Meeting: fmt.Sprint("m", i), Logger: warn})
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = r
		for _, c := range []*testmedia.Connected{conns[i%sites], conns[(i+1)%sites]} {
			src := Source{Name: c.Peer.ID(), Site: c.Peer.ID()}
			if err := r.AddTrack(src, c.Video); err != nil {
				t.Fatal(err)
			}
			if err := r.AddTrack(src, c.Audio); err != nil {
				t.Fatal(err)
			}
		}
	}
	cpu1 := cpuTime(t)
	time.Sleep(window)
	recording := cpuTime(t) - cpu1
	var wg sync.WaitGroup
	manifests := make([]Manifest, n)
	for i, r := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := r.Stop()
			if err != nil {
				t.Error(err)
			}
			manifests[i] = m
		}()
	}
	wg.Wait()
	streams := 2 * 2 * n
	perStream := (recording - reference) / time.Duration(streams)
	t.Logf("CPU over %v: %v without recording, %v with %d recordings (%d streams): %v per recorded stream (%.2f%% of a core)",
		window, reference, recording, n, streams, perStream, 100*perStream.Seconds()/window.Seconds())
	for i, m := range manifests {
		if len(m.Files) < 2 {
			t.Errorf("recording %d: files %+v", i, m.Files)
		}
		for _, f := range m.Files {
			if !f.Complete {
				t.Errorf("recording %d, %s: incomplete: %s", i, f.Name, f.Error)
			}
			for _, tr := range f.Tracks {
				if tr.PacketsDropped != 0 || tr.Frames == 0 {
					t.Errorf("recording %d, %s %s: %d frames, %d packets dropped by the recorder", i, f.Name, tr.Kind, tr.Frames, tr.PacketsDropped)
				}
			}
			if out := testmedia.DecodeErrors(t, filepath.Join(recs[i].Dir(), f.Name)); out != "" {
				t.Errorf("recording %d, %s: decode errors:\n%s", i, f.Name, out)
				if d := os.Getenv("CAU_KEEP"); d != "" {
					b, _ := os.ReadFile(filepath.Join(recs[i].Dir(), f.Name))
					_ = os.WriteFile(filepath.Join(d, fmt.Sprint(i, f.Name)), b, 0o644)
				}
			}
		}
	}
}
