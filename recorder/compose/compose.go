// Package compose renders a recording, after the meeting, into one MP4 (H.264 + AAC)
// for the archive with ffmpeg: the speaker view, following the timeline's layout (the
// speaker large, the chair when nobody else has the floor), and every site's audio mixed.
package compose

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cau-project/cau/recorder"
	"github.com/cau-project/cau/recorder/timeline"
)

// FileName is the composite's name in the recording directory.
const FileName = "composite.mp4"

// Options configure Compose.
type Options struct {
	// Dir is the recording directory (manifest, timeline, files).
	Dir string
	// Out is the MP4 to write; default Dir/composite.mp4. It is written to a temporary
	// name first, so a failed render leaves no partial composite.
	Out string
	// Width and Height of the video; default 1280×720.
	Width, Height int
	// FFmpeg is the ffmpeg binary; default "ffmpeg" from PATH.
	FFmpeg string
	// Progress, if set, is called as the render advances (done of total media time).
	Progress func(done, total time.Duration)
}

// ErrNothing is returned for a recording without any complete file.
var ErrNothing = errors.New("compose: nothing recorded")

// segment is a span of the recording (ms from its start) shown from one file.
type segment struct {
	from, to int64
	file     int // index into the inputs, −1 for black
}

// Plan is what Compose will render: the inputs and, for the speaker view, which file is
// shown when.
type Plan struct {
	Files    []recorder.File
	Duration time.Duration
	segments []segment
}

// MakePlan reads the manifest and the timeline of dir and decides what is shown when:
// for each layout of the timeline, the main site's file that covers that moment (the
// chair's when the main site has none), else black.
func MakePlan(dir string) (Plan, error) {
	m, err := recorder.ReadManifest(dir)
	if err != nil {
		return Plan{}, err
	}
	tl, err := timeline.Read(dir)
	if err != nil {
		return Plan{}, err
	}
	var p Plan
	var end int64
	for _, f := range m.Files {
		if f.Error != "" || !hasVideo(f) && !hasAudio(f) {
			continue
		}
		p.Files = append(p.Files, f)
		end = max(end, f.OffsetMs+f.DurationMs)
	}
	if len(p.Files) == 0 {
		return Plan{}, ErrNothing
	}
	if !m.Stopped.IsZero() {
		end = max(end, m.Stopped.Sub(m.Started).Milliseconds())
	}
	p.Duration = time.Duration(end) * time.Millisecond
	// Cut the recording at every layout change and every file start or end, and pick
	// the file to show in each piece.
	cuts := []int64{0, end}
	for _, e := range tl.Events {
		if e.Kind == timeline.LayoutChanged && e.OffsetMs > 0 && e.OffsetMs < end {
			cuts = append(cuts, e.OffsetMs)
		}
	}
	for _, f := range p.Files {
		cuts = append(cuts, max(f.OffsetMs, 0), min(f.OffsetMs+f.DurationMs, end))
	}
	cuts = sortedUnique(cuts)
	for i := 0; i+1 < len(cuts); i++ {
		from, to := cuts[i], cuts[i+1]
		l := tl.LayoutAt(from)
		file := p.covering(l.Main, from)
		if file < 0 {
			file = p.covering(tl.ChairSite, from)
		}
		if n := len(p.segments); n > 0 && p.segments[n-1].file == file && p.segments[n-1].to == from {
			p.segments[n-1].to = to
			continue
		}
		p.segments = append(p.segments, segment{from: from, to: to, file: file})
	}
	return p, nil
}

// covering returns the index of a video file of site that covers ms, or −1.
func (p Plan) covering(site string, ms int64) int {
	for i, f := range p.Files {
		if f.Site == site && hasVideo(f) && f.OffsetMs <= ms && ms < f.OffsetMs+f.DurationMs {
			return i
		}
	}
	return -1
}

// Shown returns the file (by name) shown at ms into the recording, "" for black.
func (p Plan) Shown(ms int64) string {
	for _, s := range p.segments {
		if s.from <= ms && ms < s.to {
			if s.file < 0 {
				return ""
			}
			return p.Files[s.file].Name
		}
	}
	return ""
}

func hasVideo(f recorder.File) bool { return hasKind(f, "video") }
func hasAudio(f recorder.File) bool { return hasKind(f, "audio") }

func hasKind(f recorder.File, kind string) bool {
	for _, t := range f.Tracks {
		if t.Kind == kind && t.Frames > 0 {
			return true
		}
	}
	return false
}

func sortedUnique(v []int64) []int64 {
	out := make([]int64, 0, len(v))
	for _, x := range v {
		i := 0
		for i < len(out) && out[i] < x {
			i++
		}
		if i < len(out) && out[i] == x {
			continue
		}
		out = append(out[:i], append([]int64{x}, out[i:]...)...)
	}
	return out
}

// filterGraph builds ffmpeg's filter graph: a black canvas; each video file scaled into
// it and shifted to its place in time, overlaid only while its segments are shown; each
// audio track delayed to its place and all mixed.
func (p Plan) filterGraph(w, h int) string {
	var b strings.Builder
	secs := p.Duration.Seconds()
	fmt.Fprintf(&b, "color=c=black:s=%dx%d:r=25:d=%.3f[base0];", w, h, secs)
	last := "base0"
	var audio []string
	for i, f := range p.Files {
		off := float64(f.OffsetMs) / 1000
		if hasAudio(f) {
			fmt.Fprintf(&b, "[%d:a]aresample=48000,adelay=%d:all=1[a%d];", i, max(f.OffsetMs, 0), i)
			audio = append(audio, fmt.Sprintf("[a%d]", i))
		}
		var enable []string
		for _, s := range p.segments {
			if s.file == i {
				enable = append(enable, fmt.Sprintf("between(t,%.3f,%.3f)", float64(s.from)/1000, float64(s.to)/1000-0.001))
			}
		}
		if !hasVideo(f) || len(enable) == 0 {
			continue
		}
		fmt.Fprintf(&b, "[%d:v]scale=%d:%d:force_original_aspect_ratio=decrease,pad=%d:%d:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=25,setpts=PTS-STARTPTS+%.3f/TB[v%d];",
			i, w, h, w, h, off, i)
		next := fmt.Sprintf("base%d", i+1)
		fmt.Fprintf(&b, "[%s][v%d]overlay=eof_action=pass:enable='%s'[%s];", last, i, strings.Join(enable, "+"), next)
		last = next
	}
	fmt.Fprintf(&b, "[%s]null[vout]", last)
	if len(audio) > 0 {
		fmt.Fprintf(&b, ";%samix=inputs=%d:duration=longest:normalize=0,atrim=0:%.3f[aout]", strings.Join(audio, ""), len(audio), secs)
	}
	return b.String()
}

// Compose renders the recording in opts.Dir into one MP4.
func Compose(ctx context.Context, opts Options) error {
	p, err := MakePlan(opts.Dir)
	if err != nil {
		return err
	}
	if opts.Width == 0 || opts.Height == 0 {
		opts.Width, opts.Height = 1280, 720
	}
	if opts.FFmpeg == "" {
		opts.FFmpeg = "ffmpeg"
	}
	if opts.Out == "" {
		opts.Out = filepath.Join(opts.Dir, FileName)
	}
	tmp := opts.Out + ".part.mp4"
	args := []string{"-nostdin", "-v", "error", "-y", "-progress", "pipe:1", "-nostats"}
	for _, f := range p.Files {
		args = append(args, "-i", filepath.Join(opts.Dir, f.Name))
	}
	args = append(args, "-filter_complex", p.filterGraph(opts.Width, opts.Height), "-map", "[vout]")
	if strings.Contains(p.filterGraph(opts.Width, opts.Height), "[aout]") {
		args = append(args, "-map", "[aout]", "-c:a", "aac", "-b:a", "128k")
	}
	args = append(args, "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
		"-movflags", "+faststart", "-t", fmt.Sprintf("%.3f", p.Duration.Seconds()), tmp)
	cmd := exec.CommandContext(ctx, opts.FFmpeg, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("compose: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("compose: start ffmpeg: %w", err)
	}
	readProgress(out, p.Duration, opts.Progress)
	if err := cmd.Wait(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("compose: ffmpeg: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if err := os.Rename(tmp, opts.Out); err != nil {
		return fmt.Errorf("compose: %w", err)
	}
	if opts.Progress != nil {
		opts.Progress(p.Duration, p.Duration)
	}
	return nil
}

// readProgress follows ffmpeg's -progress output (key=value lines; out_time_us is the
// media time rendered).
func readProgress(r io.Reader, total time.Duration, fn func(done, total time.Duration)) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok || k != "out_time_us" || fn == nil {
			continue
		}
		if us, err := strconv.ParseInt(v, 10, 64); err == nil && us >= 0 {
			fn(min(time.Duration(us)*time.Microsecond, total), total)
		}
	}
}
