package recorder

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/testmedia"
	"github.com/cau-project/cau/sfu"
)

// recordSites adds each connection's tracks to rec as the site named at the same index,
// lets it record for d and returns when that began and ended.
func recordSites(t *testing.T, rec *Recording, names []string, conns []*testmedia.Connected, d time.Duration) recorded {
	t.Helper()
	began := time.Now()
	for i, c := range conns {
		for _, u := range []*sfu.UpTrack{c.Video, c.Audio} {
			if err := rec.AddTrack(Source{Name: names[i], Site: names[i]}, u); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(d)
	return recorded{began: began, wall: time.Since(began)}
}

// recorded is the wall-clock span of a recording: from the first track added to the call
// of Stop.
type recorded struct {
	began time.Time
	wall  time.Duration
}

// maxStartLag is how long after its tracks were added a file may start: when its video
// has a keyframe and its tracks a sender report each, which the test publishers send once
// a second each whatever is asked (a camera answering keyframe requests at once starts
// sooner). Measured: 0.6–0.7 s on a quiet box, up to 2.4 s at load 20 under -race.
const maxStartLag = 3 * time.Second

// span is the wall-clock time file f must cover: from its own start (its first keyframe;
// the manifest's Start) to Stop. A file that starts later than maxStartLag fails the test.
func (r recorded) span(t *testing.T, f File) time.Duration {
	t.Helper()
	lag := f.Start.Sub(r.began)
	if lag < -100*time.Millisecond || lag > maxStartLag {
		t.Errorf("%s starts %v after its tracks were added, want 0–%v", f.Name, lag, maxStartLag)
	}
	return r.wall - max(lag, 0)
}

// startRecording starts recording as cfg says, or fails the test.
func startRecording(t testing.TB, cfg Config) *Recording {
	t.Helper()
	rec, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// stopRecording stops rec and returns its manifest, or fails the test.
func stopRecording(t testing.TB, rec *Recording) Manifest {
	t.Helper()
	m, err := rec.Stop()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestStopEndsEveryFileAtOnce is the regression test of the three-site recording's
// quiet-machine failure (files 13 s longer than the wall clock): Stop finished the sources
// one after the other, and the others kept recording while the first one finished its
// file (its close syncs to disk, which takes seconds on a slow disk with a minute of
// media in the page cache). Here the first file to close takes 3 s; every file must still
// end when Stop was called.
func TestStopEndsEveryFileAtOnce(t *testing.T) {
	clip := testmedia.MakeClip(t, 320, 240)
	b := testmedia.NewBridge(t)
	names := []string{"site-a", "site-b", "site-c"}
	conns := make([]*testmedia.Connected, len(names))
	for i, name := range names {
		pub := testmedia.NewPublisher(t, name, 0)
		conns[i] = testmedia.Connect(t, b, pub, name)
		pub.Start(func(int) *Clip { return clip })
	}
	for _, c := range conns {
		c.WaitTracks(t)
	}
	var once sync.Once
	slowClose = func() { once.Do(func() { time.Sleep(3 * time.Second) }) } // a slow disk's fsync
	t.Cleanup(func() { slowClose = nil })
	rec := startRecording(t, Config{Dir: t.TempDir(), Meeting: "m-stop", Logger: testmedia.Logger()})
	r := recordSites(t, rec, names, conns, 6*time.Second)
	wall := r.wall
	stopCalled := time.Now()
	m := stopRecording(t, rec)
	if took := time.Since(stopCalled); took < 3*time.Second {
		t.Fatalf("the slow close did not happen (Stop took %v)", took)
	}
	if len(m.Files) != len(names) {
		t.Fatalf("want one file per site, got %+v", m.Files)
	}
	for _, f := range m.Files {
		p := testmedia.ProbeFile(t, filepath.Join(rec.Dir(), f.Name))
		t.Logf("%s: %.2f s for %.2f s of wall clock", f.Name, p.Duration, wall.Seconds())
		// Only the end is checked: a file starts at the publisher's next keyframe (up to a
		// second after AddTrack here), and TestRecordThreeSites checks both ends.
		if p.Duration > wall.Seconds()+0.5 {
			t.Errorf("%s: %.2f s for %.2f s of wall clock: a file went on after Stop", f.Name, p.Duration, wall.Seconds())
		}
	}
}
