package recorder

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/testmedia"
)

// TestRecordThreeSites is the acceptance test: three pion publishers through a
// real bridge, one of them behind a 5% lossy uplink and one changing resolution mid-way,
// recorded for 60 s (in make test: the issue asks for it in CI). Every file must start
// within 3 s (at the publisher's next keyframe and sender reports), probe at the
// wall-clock time from its start to Stop (±0.5 s), decode without a single ffmpeg error,
// and keep audio within 80 ms of video.
// (Measured from the tracks' addition instead, it failed under load: the files were 0.6–0.7 s
// short, the time to the publisher's next keyframe.)
//
// It once failed on a quiet CI machine (two files 13 s longer than the wall clock): Stop
// finished the sources one after another, and the later ones went on recording while the
// first synced its file. TestStopEndsEveryFileAtOnce covers that.
func TestRecordThreeSites(t *testing.T) {
	const seconds = 60
	small, large := testmedia.MakeClip(t, 320, 240), testmedia.MakeClip(t, 480, 360)
	b := testmedia.NewBridge(t)
	type site struct {
		name string
		loss float64
		clip func(int) *Clip
	}
	sites := []site{
		{"site-a", 0, func(int) *Clip { return small }},
		{"site-b", 0.05, func(int) *Clip { return small }},
		{"site-c", 0, func(n int) *Clip { // a third of the way in, the camera goes up a size
			if n >= seconds/6 {
				return large
			}
			return small
		}},
	}
	conns := make([]*testmedia.Connected, len(sites))
	var wg sync.WaitGroup
	for i, s := range sites {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pub := testmedia.NewPublisher(t, s.name, s.loss)
			conns[i] = testmedia.Connect(t, b, pub, s.name)
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	rec := startRecording(t, Config{Dir: t.TempDir(), Meeting: "m3", Logger: testmedia.Logger()})
	// Publishers start sending as the recording starts, so each file spans the whole
	// recording (a publisher sending before would too; this keeps the clips in phase
	// with the wall clock for the resolution change).
	for i, c := range conns {
		c.Pub.Start(sites[i].clip)
	}
	for _, c := range conns {
		c.WaitTracks(t)
	}
	names := make([]string, len(sites))
	for i, s := range sites {
		names[i] = s.name
	}
	r := recordSites(t, rec, names, conns, time.Duration(seconds)*time.Second)
	m := stopRecording(t, rec)
	if len(m.Files) != len(sites) {
		t.Fatalf("want one file per site, got %+v", m.Files)
	}
	for _, f := range m.Files {
		t.Run(f.Source, func(t *testing.T) {
			if !f.Complete || f.Error != "" {
				t.Errorf("file %+v", f)
			}
			path := filepath.Join(rec.Dir(), f.Name)
			checkFile(t, path, r.span(t, f))
			for _, tr := range f.Tracks {
				t.Logf("%s: %+v", f.Name, tr)
				if tr.PacketsDropped != 0 {
					t.Errorf("%s %s: the recorder dropped %d packets", f.Name, tr.Kind, tr.PacketsDropped)
				}
			}
			if f.Source == "site-c" {
				sizes := testmedia.FrameSizes(t, path)
				if fmt.Sprint(sizes) != "[320x240 480x360]" {
					t.Errorf("site-c frame sizes %v, want 320x240 then 480x360", sizes)
				}
			}
		})
	}
	if d := conns[1].Pub.Dropped.Load(); d == 0 {
		t.Error("the lossy link dropped nothing")
	} else {
		t.Logf("site-b's link dropped %d packets", d)
	}
}
