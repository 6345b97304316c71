// Package testmedia gives tests real media: short VP8 and Opus clips made by ffmpeg (a
// white flash and a 1 kHz beep at the same instant of every 2 s cycle), a pion publisher
// that sends them in real time, and ffprobe/ffmpeg checks of recorded files. Tests that
// use it skip when ffmpeg is missing, and fail under CI=true (.ci/run installs it).
package testmedia

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"

	"github.com/cau-project/cau/internal/testutil"
)

// Cycle is the clip length: the flash and the beep start at FlashAt into each cycle.
const (
	Cycle    = 2 * time.Second
	FlashAt  = time.Second
	FlashLen = 100 * time.Millisecond
	FPS      = 30
)

// Need returns the paths of ffmpeg and ffprobe, or skips the test (fails it under CI).
func Need(t testing.TB) (ffmpeg, ffprobe string) {
	t.Helper()
	return testutil.Tool(t, "ffmpeg", "ffmpeg"), testutil.Tool(t, "ffmpeg", "ffprobe")
}

// Clip is one encoded cycle: video frames at FPS (the first a keyframe, another at 1 s)
// and 20 ms Opus packets, both Cycle long. Video is VP8, or H.264 (Annex B access units,
// SPS and PPS before each IDR) when Mime says so.
type Clip struct {
	Mime          string // webrtc.MimeTypeVP8 or webrtc.MimeTypeH264
	Width, Height int
	Video         [][]byte
	Audio         [][]byte
}

var (
	clipsMu sync.Mutex
	clips   = map[string]*Clip{}
)

// MakeClip encodes (or reuses from the cache directory) the clip at width×height, a
// test pattern (ffmpeg's testsrc).
func MakeClip(t testing.TB, width, height int) *Clip {
	t.Helper()
	return MakeClipOf(t, "testsrc", width, height)
}

// MakeClipOf is MakeClip with another lavfi video source, such as "color=c=red" (a
// site a test can tell apart by its colour).
func MakeClipOf(t testing.TB, source string, width, height int) *Clip {
	t.Helper()
	return makeClip(t, source, width, height, false)
}

// MakeH264Clip is MakeClip with H.264 (constrained baseline, as WebRTC sends it).
func MakeH264Clip(t testing.TB, width, height int) *Clip {
	t.Helper()
	return makeClip(t, "testsrc", width, height, true)
}

func makeClip(t testing.TB, source string, width, height int, h264 bool) *Clip {
	t.Helper()
	ffmpeg, _ := Need(t)
	key := fmt.Sprintf("%s %dx%d h264=%v", source, width, height, h264)
	sep := "="
	if strings.Contains(source, "=") {
		sep = ":"
	}
	clipsMu.Lock()
	defer clipsMu.Unlock()
	if c := clips[key]; c != nil {
		return c
	}
	sec := func(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
	flash := fmt.Sprintf(`between(mod(t\,%s)\,%s\,%s)`, sec(Cycle), sec(FlashAt), sec(FlashAt+FlashLen-time.Millisecond))
	videoArgs := []string{"-f", "lavfi", "-i",
		fmt.Sprintf("%s%ssize=%dx%d:rate=%d:duration=%s,drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='%s'",
			source, sep, width, height, FPS, sec(Cycle), flash),
		"-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k", "-g", fmt.Sprint(FPS),
		"-keyint_min", fmt.Sprint(FPS), "-auto-alt-ref", "0", "-lag-in-frames", "0", "-threads", "1"}
	videoFile := "clip.ivf"
	if h264 {
		videoArgs = append(videoArgs[:4], "-pix_fmt", "yuv420p", "-c:v", "libx264", "-profile:v", "baseline",
			"-preset", "ultrafast", "-tune", "zerolatency", "-b:v", "300k", "-g", fmt.Sprint(FPS), "-keyint_min", fmt.Sprint(FPS),
			"-x264-params", "aud=1:repeat-headers=1", "-threads", "1", "-bsf:v", "h264_mp4toannexb", "-f", "h264")
		videoFile = "clip.h264"
	}
	audioArgs := []string{"-f", "lavfi", "-i",
		fmt.Sprintf("aevalsrc='0.5*sin(2*PI*1000*t)*%s':s=48000:d=%s", flash, sec(Cycle)),
		"-c:a", "libopus", "-b:a", "32k", "-frame_duration", "20", "-page_duration", "20000"}
	sum := sha256.Sum256([]byte(fmt.Sprint(videoArgs, audioArgs)))
	dir := filepath.Join(os.TempDir(), "cau-testmedia-"+hex.EncodeToString(sum[:6]))
	ivf, ogg := filepath.Join(dir, videoFile), filepath.Join(dir, "clip.ogg")
	if _, err := os.Stat(ogg); err != nil {
		tmp, err := os.MkdirTemp(os.TempDir(), "cau-testmedia-tmp")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		for _, args := range [][]string{append(videoArgs, filepath.Join(tmp, videoFile)), append(audioArgs, filepath.Join(tmp, "clip.ogg"))} {
			cmd := exec.Command(ffmpeg, append([]string{"-v", "error", "-y"}, args...)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
			}
		}
		// Publish the pair by renaming the directory, so a concurrent test never reads a
		// half-written clip.
		if err := os.Rename(tmp, dir); err != nil && !os.IsExist(err) {
			if _, serr := os.Stat(ogg); serr != nil {
				t.Fatalf("cache clip: %v", err)
			}
		}
	}
	c := &Clip{Mime: "video/VP8", Width: width, Height: height}
	var err error
	if h264 {
		c.Mime = "video/H264"
		c.Video, err = readAnnexB(ivf)
	} else {
		c.Video, err = readIVF(ivf)
	}
	if err != nil {
		t.Fatal(err)
	}
	if c.Audio, err = readOgg(ogg); err != nil {
		t.Fatal(err)
	}
	// The encoder adds a packet for its priming samples: keep exactly one cycle.
	if n := int(Cycle / (20 * time.Millisecond)); len(c.Audio) > n {
		c.Audio = c.Audio[:n]
	}
	if len(c.Video) != int(Cycle.Seconds()*FPS) || len(c.Audio) != int(Cycle/(20*time.Millisecond)) {
		t.Fatalf("clip %s: %d video frames, %d audio packets", key, len(c.Video), len(c.Audio))
	}
	clips[key] = c
	return c
}

// readIVF reads an IVF file's frames.
func readIVF(path string) ([][]byte, error) {
	return readUnits(path, func(r io.Reader) (func() ([]byte, error), error) {
		ivf, _, err := ivfreader.NewWith(r)
		if err != nil {
			return nil, err
		}
		return func() ([]byte, error) { f, _, err := ivf.ParseNextFrame(); return f, err }, nil
	})
}

// readUnits reads path's units (frames, packets) with the reader open makes of its
// bytes until io.EOF; a nil unit is skipped.
func readUnits(path string, open func(io.Reader) (func() ([]byte, error), error)) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	next, err := open(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var units [][]byte
	for {
		u, err := next()
		if err == io.EOF {
			return units, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if u != nil {
			units = append(units, u)
		}
	}
}

// readAnnexB splits an H.264 Annex B stream into access units at its delimiters (AUD
// NAL units, which the encoder was told to write).
func readAnnexB(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	aud := []byte{0, 0, 0, 1, 9}
	var units [][]byte
	for len(b) > 0 {
		next := bytes.Index(b[1:], aud)
		if next < 0 {
			units = append(units, b)
			break
		}
		units = append(units, b[:next+1])
		b = b[next+1:]
	}
	return units, nil
}

// readOgg reads an Ogg Opus file's packets, without its header and tags pages.
func readOgg(path string) ([][]byte, error) {
	return readUnits(path, func(r io.Reader) (func() ([]byte, error), error) {
		ogg, _, err := oggreader.NewWith(r)
		if err != nil {
			return nil, err
		}
		return func() ([]byte, error) {
			p, h, err := ogg.ParseNextPage()
			if err == nil && (h.GranulePosition == 0 || bytes.HasPrefix(p, []byte("OpusTags"))) {
				return nil, nil // the tags page
			}
			return p, err
		}, nil
	})
}
