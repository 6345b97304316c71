package testmedia

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Probe is what ffprobe says of a file.
type Probe struct {
	Duration float64 // format duration, seconds; NaN when the file has none
	Streams  []Stream
}

// Stream is one stream of a probed file.
type Stream struct {
	Type, Codec   string
	Width, Height int
	Frames        int // decoded frames (ffprobe -count_frames)
}

// ProbeFile runs ffprobe on path, decoding every frame to count them.
func ProbeFile(t testing.TB, path string) Probe {
	t.Helper()
	_, ffprobe := Need(t)
	out, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-show_entries",
		"format=duration:stream=codec_type,codec_name,width,height,nb_read_frames", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var raw struct {
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
		Streams []struct {
			CodecType string `json:"codec_type"`
			CodecName string `json:"codec_name"`
			Width     int    `json:"width"`
			Height    int    `json:"height"`
			Frames    string `json:"nb_read_frames"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	p := Probe{Duration: math.NaN()}
	if d, err := strconv.ParseFloat(raw.Format.Duration, 64); err == nil {
		p.Duration = d
	}
	for _, s := range raw.Streams {
		n, _ := strconv.Atoi(s.Frames)
		p.Streams = append(p.Streams, Stream{Type: s.CodecType, Codec: s.CodecName, Width: s.Width, Height: s.Height, Frames: n})
	}
	return p
}

// Stream returns the first stream of the type ("audio", "video"), if any.
func (p Probe) Stream(typ string) (Stream, bool) {
	for _, s := range p.Streams {
		if s.Type == typ {
			return s, true
		}
	}
	return Stream{}, false
}

// DecodeErrors decodes every stream of path with ffmpeg at log level error and returns
// what it printed: empty for a clean file.
//
// The decoded frames keep the file's own time base (-enc_time_base -1). With ffmpeg's
// default, video is re-timed at 1/frame rate, and two frames of a valid variable-rate
// file less than a frame period apart (frames placed on a publisher's sender clock,
// 22 ms apart for a moment) land on one tick and read as "non monotonically increasing
// dts" errors; frames that really share a timestamp are still reported.
func DecodeErrors(t testing.TB, path string) string {
	t.Helper()
	ffmpeg, _ := Need(t)
	out, err := exec.Command(ffmpeg, "-nostdin", "-v", "error", "-i", path, "-enc_time_base", "-1",
		"-f", "null", "-").CombinedOutput()
	if err != nil && len(out) == 0 {
		return err.Error()
	}
	return strings.TrimSpace(string(out))
}

// FrameSizes lists the distinct video sizes decoded from path, in order of appearance.
func FrameSizes(t testing.TB, path string) []string {
	t.Helper()
	_, ffprobe := Need(t)
	out, err := exec.Command(ffprobe, "-v", "error", "-select_streams", "v", "-show_entries", "frame=width,height",
		"-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe frames %s: %v", path, err)
	}
	var sizes []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		s := strings.Replace(strings.Trim(strings.TrimSpace(sc.Text()), ","), ",", "x", 1)
		if s != "" && (len(sizes) == 0 || sizes[len(sizes)-1] != s) {
			sizes = append(sizes, s)
		}
	}
	return sizes
}

// FlashOnsets returns the times (s, on the file's clock) of the frames where the
// picture turns white: a frame's mean luma crosses 200 from below.
func FlashOnsets(t testing.TB, path string) []float64 {
	t.Helper()
	_, ffprobe := Need(t)
	out, err := exec.Command(ffprobe, "-v", "error", "-f", "lavfi", "-i", "movie="+lavfiPath(path)+",signalstats",
		"-show_entries", "frame=pts_time:frame_tags=lavfi.signalstats.YAVG", "-of", "csv=p=0").Output()
	if err != nil {
		t.Fatalf("ffprobe signalstats %s: %v", path, err)
	}
	var onsets []float64
	bright := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(strings.TrimSpace(sc.Text()), ",")
		if len(f) < 2 {
			continue
		}
		ts, err1 := strconv.ParseFloat(f[0], 64)
		y, err2 := strconv.ParseFloat(f[1], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		if y > 200 && !bright {
			onsets = append(onsets, ts)
		}
		bright = y > 200
	}
	return onsets
}

var silenceEnd = regexp.MustCompile(`silence_end: (-?[0-9.]+)`)

// BeepOnsets returns the times (s, on the file's clock) where the audio rises out of
// silence (ffmpeg silencedetect at −30 dB). silencedetect also ends a silence at the end
// of the file; that one is left out.
func BeepOnsets(t testing.TB, path string) []float64 {
	t.Helper()
	ffmpeg, _ := Need(t)
	out, err := exec.Command(ffmpeg, "-nostdin", "-v", "info", "-i", path, "-vn", "-af",
		"silencedetect=noise=-30dB:d=0.05", "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg silencedetect %s: %v\n%s", path, err, out)
	}
	end := LastPacket(t, path)
	var onsets []float64
	for _, m := range silenceEnd.FindAllSubmatch(out, -1) {
		if v, err := strconv.ParseFloat(string(m[1]), 64); err == nil && v < end-0.01 {
			onsets = append(onsets, v)
		}
	}
	return onsets
}

// AVOffsets pairs each flash with the nearest beep and returns beep − flash for each
// pair closer than half a cycle.
func AVOffsets(flashes, beeps []float64) []time.Duration {
	var offs []time.Duration
	for _, f := range flashes {
		best := math.Inf(1)
		for _, b := range beeps {
			if math.Abs(b-f) < math.Abs(best) {
				best = b - f
			}
		}
		if math.Abs(best) < Cycle.Seconds()/2 {
			offs = append(offs, time.Duration(best*float64(time.Second)))
		}
	}
	return offs
}

// Median returns the median of ds (0 for none).
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// lavfiPath escapes a path for the movie filter.
func lavfiPath(p string) string {
	r := strings.NewReplacer(`\`, `\\\\`, `'`, `\\\'`, `:`, `\\:`, `,`, `\,`, `;`, `\;`, `[`, `\[`, `]`, `\]`)
	return r.Replace(p)
}

// LastPacket returns the latest packet time (s) in path: the playable length of a file
// that has no duration (one cut short by a crash).
func LastPacket(t testing.TB, path string) float64 {
	t.Helper()
	_, ffprobe := Need(t)
	out, err := exec.Command(ffprobe, "-v", "error", "-show_entries", "packet=pts_time", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe packets %s: %v", path, err)
	}
	last := 0.0
	for _, l := range strings.Fields(string(out)) {
		if v, err := strconv.ParseFloat(strings.Trim(l, ","), 64); err == nil && v > last {
			last = v
		}
	}
	return last
}
