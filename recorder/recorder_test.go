package recorder

import (
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/testmedia"
)

// TestRecordOneSource records a real pion publisher through a real bridge for a few
// seconds and checks the file with ffprobe and ffmpeg: both streams, the wall-clock
// duration, a clean decode, lip sync from the flash and the beep, and a keyframe asked
// for at the start.
func TestRecordOneSource(t *testing.T) {
	clip := testmedia.MakeClip(t, 320, 240)
	b := testmedia.NewBridge(t)
	pub := testmedia.NewPublisher(t, "site-a", 0)
	pub.Start(func(int) *Clip { return clip })
	c := testmedia.Connect(t, b, pub, "site-a")
	c.WaitTracks(t)

	var mu sync.Mutex
	var speech []time.Time // talk spurt starts
	onSpeech := func(src Source, talking bool, at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if src.Site == "site-a" && talking {
			speech = append(speech, at)
		}
	}
	rec := startRecording(t, Config{Dir: t.TempDir(), Meeting: "m1", Logger: testmedia.Logger(), OnSpeech: onSpeech})
	r := recordSites(t, rec, []string{"site-a"}, []*testmedia.Connected{c}, 8*time.Second)
	m := stopRecording(t, rec)
	if len(m.Files) != 1 || !m.Files[0].Complete {
		t.Fatalf("manifest files: %+v", m.Files)
	}
	f := m.Files[0]
	path := filepath.Join(rec.Dir(), f.Name)
	checkFile(t, path, r.span(t, f))
	if pub.PLIs.Load() == 0 {
		t.Error("the publisher got no keyframe request")
	}
	// Each beep is a talk spurt, reported on the server's clock where the file has it.
	beeps := testmedia.BeepOnsets(t, path)
	mu.Lock()
	defer mu.Unlock()
	if len(speech) != len(beeps) || len(speech) < 3 {
		t.Errorf("speech starts %v, beeps at %v s into the file", speech, beeps)
	}
	for i := range min(len(speech), len(beeps)) {
		inFile := f.Start.Add(time.Duration(beeps[i] * float64(time.Second)))
		if d := speech[i].Sub(inFile); d.Abs() > 100*time.Millisecond {
			t.Errorf("speech %d at %v, beep in the file at %v (%v apart)", i, speech[i], inFile, d)
		}
	}
	for _, tr := range f.Tracks {
		if tr.Sync != "sr" || tr.PacketsDropped != 0 {
			t.Errorf("track %+v: want synced on sender reports, nothing dropped", tr)
		}
	}
}

type Clip = testmedia.Clip

// checkFile is what every recorded file must pass: VP8 and Opus streams with frames,
// a duration within 0.5 s of its wall-clock span, no decode error, audio within 80 ms of video.
func checkFile(t *testing.T, path string, wall time.Duration) {
	t.Helper()
	checkFileCodecs(t, path, wall, "vp8")
}

func checkFileCodecs(t *testing.T, path string, wall time.Duration, videoCodec string) {
	t.Helper()
	p := testmedia.ProbeFile(t, path)
	v, okV := p.Stream("video")
	a, okA := p.Stream("audio")
	if !okV || !okA || v.Codec != videoCodec || a.Codec != "opus" || v.Frames == 0 || a.Frames == 0 {
		t.Errorf("%s: streams %+v", filepath.Base(path), p.Streams)
	}
	if math.IsNaN(p.Duration) || math.Abs(p.Duration-wall.Seconds()) > 0.5 {
		t.Errorf("%s: duration %.2f s, wall %.2f s", filepath.Base(path), p.Duration, wall.Seconds())
	}
	if out := testmedia.DecodeErrors(t, path); out != "" {
		t.Errorf("%s: ffmpeg decode errors:\n%s", filepath.Base(path), out)
	}
	flashes, beeps := testmedia.FlashOnsets(t, path), testmedia.BeepOnsets(t, path)
	offs := testmedia.AVOffsets(flashes, beeps)
	if len(offs) < len(flashes)/2 || len(offs) == 0 {
		t.Errorf("%s: %d flashes %v, %d beeps %v: too few pairs", filepath.Base(path), len(flashes), flashes, len(beeps), beeps)
		return
	}
	med := testmedia.Median(offs)
	t.Logf("%s: %.2f s, %d video / %d audio frames, A/V offset median %v over %d flashes",
		filepath.Base(path), p.Duration, v.Frames, a.Frames, med, len(offs))
	if med.Abs() >= 80*time.Millisecond {
		t.Errorf("%s: audio−video offset %v (pairs %v)", filepath.Base(path), med, offs)
	}
}

// TestRecordH264 records a publisher that sends H.264: the file is Matroska (.mkv) with
// an AVC track that decodes cleanly and stays in sync with the audio.
func TestRecordH264(t *testing.T) {
	clip := testmedia.MakeH264Clip(t, 320, 240)
	b := testmedia.NewBridge(t)
	pub := testmedia.NewPublisherOf(t, "site-h", 0, clip.Mime)
	c := testmedia.Connect(t, b, pub, "site-h")
	pub.Start(func(int) *Clip { return clip })
	c.WaitTracks(t)
	if !strings.EqualFold(c.Video.Codec().MimeType, "video/h264") {
		t.Fatalf("negotiated %s", c.Video.Codec().MimeType)
	}
	rec := startRecording(t, Config{Dir: t.TempDir(), Meeting: "mh", Logger: testmedia.Logger()})
	r := recordSites(t, rec, []string{"site-h"}, []*testmedia.Connected{c}, 6*time.Second)
	m := stopRecording(t, rec)
	if len(m.Files) != 1 || filepath.Ext(m.Files[0].Name) != ".mkv" {
		t.Fatalf("files %+v", m.Files)
	}
	checkFileCodecs(t, filepath.Join(rec.Dir(), m.Files[0].Name), r.span(t, m.Files[0]), "h264")
}
