package compose

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/testmedia"
	"github.com/cau-project/cau/recorder"
	"github.com/cau-project/cau/recorder/timeline"
	"github.com/cau-project/cau/rooms"
)

// colourAt names the colour in the middle of the composite's picture at sec: "red",
// "blue", "white" (a flash) or "other". It seeks accurately and decodes one frame.
func colourAt(t *testing.T, path string, sec float64) string {
	t.Helper()
	ffmpeg, _ := testmedia.Need(t)
	out, err := exec.Command(ffmpeg, "-nostdin", "-v", "error", "-ss", strconv.FormatFloat(sec, 'f', 3, 64), "-i", path,
		"-frames:v", "1", "-vf", "scale=16:9", "-f", "rawvideo", "-pix_fmt", "rgb24", "-").Output()
	if err != nil || len(out) < 16*9*3 {
		t.Fatalf("frame at %.2f s: %v (%d bytes)", sec, err, len(out))
	}
	px := out[(4*16+8)*3:]
	r, g, b := int(px[0]), int(px[1]), int(px[2])
	switch {
	case r > 180 && g > 180 && b > 180:
		return "white"
	case r > 180 && g < 80 && b < 80:
		return "red"
	case b > 180 && r < 80 && g < 80:
		return "blue"
	}
	return "other"
}

// shownAt is colourAt that looks past a flash (100 ms of white every 2 s).
func shownAt(t *testing.T, path string, sec float64) string {
	t.Helper()
	c := colourAt(t, path, sec)
	if c == "white" {
		c = colourAt(t, path, sec+0.2)
	}
	return c
}

// TestComposeFollowsTheFloor records the chair site (red) and a province (blue) through a
// real bridge; half-way the chair gives the province the floor. The composite must show
// red before the change and blue after it, carry H.264 and AAC, decode cleanly and last
// as long as the recording.
func TestComposeFollowsTheFloor(t *testing.T) {
	red := testmedia.MakeClipOf(t, "color=c=red", 320, 240)
	blue := testmedia.MakeClipOf(t, "color=c=blue", 320, 240)
	b := testmedia.NewBridge(t)
	chair := testmedia.Connect(t, b, testmedia.NewPublisher(t, "tw", 0), "tw")
	prov := testmedia.Connect(t, b, testmedia.NewPublisher(t, "p1", 0), "p1")
	chair.Pub.Start(func(int) *testmedia.Clip { return red })
	prov.Pub.Start(func(int) *testmedia.Clip { return blue })
	chair.WaitTracks(t)
	prov.WaitTracks(t)

	dir := t.TempDir()
	if d := os.Getenv("CAU_KEEP"); d != "" { // keep the recording there, to look at it
		dir = d
	}
	meeting := rooms.Meeting{ID: "m1", ChairSite: "tw", Sites: []string{"tw", "p1"}, Mode: rooms.ModeTraining}
	floor := rooms.NewFloor(meeting)
	tlw, err := timeline.NewWriter(dir, "m1", "tw", time.Now(), floor.State(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := recorder.Start(recorder.Config{Dir: dir, Meeting: "m1", Logger: testmedia.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*testmedia.Connected{chair, prov} {
		site := c.Peer.ID()
		if err := rec.AddTrack(recorder.Source{Name: site, Site: site}, c.Video); err != nil {
			t.Fatal(err)
		}
		if err := rec.AddTrack(recorder.Source{Name: site, Site: site}, c.Audio); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(5 * time.Second)
	if err := floor.Grant(rooms.Actor{Role: rooms.RoleChair, Site: "tw"}, "p1", rooms.MicAndCamera); err != nil {
		t.Fatal(err)
	}
	st := floor.State()
	st.UpdatedAt = time.Now()
	tlw.Change(rooms.Change{MeetingID: "m1", Kind: rooms.ChangeFloor, Floor: &st})
	time.Sleep(5 * time.Second)
	m, err := rec.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if err := tlw.Close(m.Stopped); err != nil {
		t.Fatal(err)
	}
	tl := tlw.Timeline()
	var change int64 = -1
	for _, e := range tl.Events {
		if e.Kind == timeline.LayoutChanged && e.Layout.Main == "p1" {
			change = e.OffsetMs
		}
	}
	if change < 0 {
		t.Fatalf("no layout change to p1 in %+v", tl.Events)
	}

	var progressed atomic.Int64
	ffmpeg, _ := testmedia.Need(t)
	err = Compose(context.Background(), Options{Dir: dir, FFmpeg: ffmpeg, Width: 640, Height: 360,
		Progress: func(done, total time.Duration) { progressed.Store(int64(done)) }})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, FileName)
	p := testmedia.ProbeFile(t, out)
	v, okV := p.Stream("video")
	a, okA := p.Stream("audio")
	if !okV || !okA || v.Codec != "h264" || a.Codec != "aac" || v.Width != 640 {
		t.Fatalf("composite streams %+v", p.Streams)
	}
	wall := m.Stopped.Sub(m.Started).Seconds()
	if p.Duration < wall-0.6 || p.Duration > wall+0.6 {
		t.Errorf("composite %.2f s, recording %.2f s", p.Duration, wall)
	}
	if errs := testmedia.DecodeErrors(t, out); errs != "" {
		t.Errorf("composite decode errors:\n%s", errs)
	}
	if time.Duration(progressed.Load()) < time.Duration(p.Duration*0.9*float64(time.Second)) {
		t.Errorf("progress reached %v of %.1f s", time.Duration(progressed.Load()), p.Duration)
	}
	// Frames around the change (skipping the flashes, which are white in both).
	at := float64(change) / 1000
	for _, c := range []struct {
		sec  float64
		want string
	}{{at - 1.5, "red"}, {at - 0.5, "red"}, {at + 0.5, "blue"}, {at + 1.5, "blue"}} {
		if got := shownAt(t, out, c.sec); got != c.want {
			t.Errorf("at %.2f s (change at %.2f s): %s, want %s", c.sec, at, got, c.want)
		}
	}
}
