package loadtest

import (
	"fmt"
	"slices"

	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/protocol"
)

// LastNFigures compare what each subscriber received with what the meeting's Last-N says
// it should (lastn.go): one verdict per subscriber and turn in the window, from the turn's
// three samples.
type LastNFigures struct {
	// VideoN and AudioN are the Last-N the server was assumed to apply (--video-n,
	// --audio-n: the server's configuration).
	VideoN int `json:"video_n"`
	AudioN int `json:"audio_n"`
	// Talkers spoke in turns of TurnSeconds; Turns were taken in the window.
	Talkers     int     `json:"talkers"`
	TurnSeconds float64 `json:"turn_s"`
	Turns       int     `json:"turns"`
	// Pinned are the sites pinned at the last sample (the chair's, floor holders, pins).
	Pinned []string `json:"pinned_sites"`
	// Samples counts the verdicts: (subscriber, turn) pairs.
	Samples int `json:"samples"`
	// Audio and Video are the streams a subscriber received at a turn's last sample.
	Audio Range `json:"audio_per_subscriber"`
	Video Range `json:"video_per_subscriber"`
	// Over counts streams received that Last-N (or the subscriber's view) should have held
	// back; Under expected streams missing; both summed over the verdicts.
	OverAudio  int `json:"over_audio"`
	OverVideo  int `json:"over_video"`
	UnderAudio int `json:"under_audio"`
	UnderVideo int `json:"under_video"`
	// MissedPct is the share of samples with any over- or under-delivery, in percent;
	// Misses are the first few, for diagnosis.
	Missed    int      `json:"missed_samples"`
	MissedPct float64  `json:"missed_pct"`
	Misses    []string `json:"misses,omitempty"`
	// Glitches are samples that were off at some of a turn's sample times but not all: a
	// moment's stall (a loaded box), not counted as missed.
	Glitches int `json:"glitches"`
	// NewTalker is, per turn and subscriber that was not receiving the talker when its turn
	// began, the time until its audio arrived, in ms. Kept counts subscribers already
	// receiving it (its slot kept from an earlier turn); Late those it did not reach within
	// the turn.
	NewTalker     Percentiles `json:"new_talker_ms"`
	NewTalkerKept int         `json:"new_talker_kept"`
	NewTalkerLate int         `json:"new_talker_late"`
	// DominantChanges are the dominant-speaker changes the chair was told of in the window:
	// about one per turn; more is flapping.
	DominantChanges int `json:"dominant_changes"`
	// Tiles are the layers the shown tiles received; nil without views.
	Tiles *TileFigures `json:"tiles,omitempty"`
}

// Range is a count's minimum, median and maximum.
type Range struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

// TileFigures say, per tile size, at which simulcast layer the tile's video arrived over the
// window (the layer most of its packets came at), against the layer the tile's height
// asks for (protocol.LayerForHeight).
type TileFigures struct {
	// Large and Small count the tiles of each size by the layer received: low, middle, top.
	Large [3]int `json:"large"`
	Small [3]int `json:"small"`
	// AtLayer tiles got the layer their height asks for, Above a larger one (the view
	// ignored), Below a smaller one (the link or the publisher could not give more).
	AtLayer int `json:"at_layer"`
	Above   int `json:"above"`
	Below   int `json:"below"`
	// Empty shown tiles received no video in the window; Hidden tiles (height 0) that did
	// are counted in HiddenWithVideo.
	Empty           int `json:"empty"`
	HiddenWithVideo int `json:"hidden_with_video"`
}

func rangeOf(v []float64) Range {
	if len(v) == 0 {
		return Range{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return Range{Min: s[0], Median: s[len(s)/2], Max: s[len(s)-1]}
}

// fillLastN turns the run's Last-N bookkeeping and the window's snapshots into the
// report's section.
func (rep *Report) fillLastN(r *runner, start, end *snapshot) {
	l := r.lastn
	if l == nil {
		return
	}
	l.mu.Lock()
	f := &LastNFigures{VideoN: r.cfg.VideoN, AudioN: r.cfg.AudioN, Talkers: r.cfg.Talkers,
		TurnSeconds: r.cfg.TalkEvery.Seconds(), Turns: l.turns, Pinned: l.pinned, Samples: l.samples,
		Audio: rangeOf(l.counts.audio), Video: rangeOf(l.counts.video),
		OverAudio: l.over[0], OverVideo: l.over[1], UnderAudio: l.under[0], UnderVideo: l.under[1],
		Missed: l.missed, Glitches: l.glitches, Misses: l.misses, NewTalker: percentiles(l.arrival), NewTalkerKept: l.kept,
		NewTalkerLate: l.late, DominantChanges: l.domSeen}
	tileStart := l.tileStart
	l.mu.Unlock()
	if f.Samples > 0 {
		f.MissedPct = 100 * float64(f.Missed) / float64(f.Samples)
	}
	if r.cfg.ViewTiles > 0 && r.cfg.Media != MediaAudio {
		f.Tiles = tileFigures(r, tileStart, end)
	}
	rep.LastN = f
}

// layerSnapshot reads every video stream's packets per layer.
func (r *runner) layerSnapshot() map[*client.Stream][3]int64 {
	out := map[*client.Stream][3]int64{}
	for _, b := range r.bots {
		for _, s := range b.streamList() {
			if s.Kind == "video" {
				out[s] = s.LayerPackets()
			}
		}
	}
	return out
}

// tileFigures reads, for every subscriber's view, the layer each tile's video came at from
// the first turn's end (the views settled: start) to the window's end.
func tileFigures(r *runner, start map[*client.Stream][3]int64, end *snapshot) *TileFigures {
	var t TileFigures
	for _, b := range r.bots {
		view := b.viewOf()
		if b.c == nil || view == nil {
			continue
		}
		for idx, h := range view {
			p := r.bots[idx]
			s := b.c.Stream(p.c.Self.Streams[protocol.SourceCamera], "video")
			var d [3]int64
			if s != nil {
				if e, ok := end.streams[s]; ok {
					d = e.layers
					if st, ok := start[s]; ok {
						for i := range d {
							d[i] -= st[i]
						}
					}
				}
			}
			best, most := -1, int64(0)
			for i, v := range d {
				if v > most {
					best, most = i, v
				}
			}
			want := protocol.LayerForHeight(h)
			switch {
			case want < 0:
				if best >= 0 {
					t.HiddenWithVideo++
				}
				continue
			case best < 0:
				t.Empty++
				continue
			case best == want:
				t.AtLayer++
			case best > want:
				t.Above++
			default:
				t.Below++
			}
			if h == largeTile {
				t.Large[best]++
			} else {
				t.Small[best]++
			}
		}
	}
	return &t
}

// checkLastN applies the Last-N threshold.
func (rep *Report) checkLastN(t Thresholds) {
	f := rep.LastN
	if f == nil || t.MaxLastNMissPct < 0 {
		return
	}
	if f.Samples == 0 {
		rep.Violations = append(rep.Violations, "no Last-N sample in the window (a turn longer than the window?)")
		return
	}
	if f.MissedPct > t.MaxLastNMissPct {
		rep.Violations = append(rep.Violations, fmt.Sprintf("Last-N: %.1f%% of samples over- or under-delivered > %.1f%% (over %d audio %d video, under %d audio %d video)",
			f.MissedPct, t.MaxLastNMissPct, f.OverAudio, f.OverVideo, f.UnderAudio, f.UnderVideo))
	}
	if tf := f.Tiles; tf != nil && tf.HiddenWithVideo+tf.Above > 0 {
		rep.Violations = append(rep.Violations, fmt.Sprintf("views: %d hidden tiles received video, %d tiles above their layer",
			tf.HiddenWithVideo, tf.Above))
	}
}

// writeLastN prints the Last-N section of the summary.
func (rep *Report) writeLastN(p func(format string, args ...any)) {
	f := rep.LastN
	if f == nil {
		return
	}
	p("  last-N      %d video + %d audio (+ pinned %v); %d talkers in turns of %.1f s, %d turns, %d dominant-speaker changes",
		f.VideoN, f.AudioN, f.Pinned, f.Talkers, f.TurnSeconds, f.Turns, f.DominantChanges)
	p("              per subscriber audio %.0f/%.0f/%.0f, video %.0f/%.0f/%.0f (min/median/max over %d samples)",
		f.Audio.Min, f.Audio.Median, f.Audio.Max, f.Video.Min, f.Video.Median, f.Video.Max, f.Samples)
	p("              over-delivered audio %d video %d; missing audio %d video %d; %d samples off (%.2f%%), %d glitches (off for a moment only)",
		f.OverAudio, f.OverVideo, f.UnderAudio, f.UnderVideo, f.Missed, f.MissedPct, f.Glitches)
	for _, m := range f.Misses[:min(len(f.Misses), 3)] {
		p("              %s", m)
	}
	if f.Talkers > 0 {
		n := f.NewTalker
		p("              new talker heard after p50 %.0f  p95 %.0f  max %.0f ms (n=%d); already heard %d, not within the turn %d",
			n.P50, n.P95, n.Max, n.Count, f.NewTalkerKept, f.NewTalkerLate)
	}
	if t := f.Tiles; t != nil {
		p("              tiles at their layer %d, above %d, below %d, empty %d; large low/mid/top %d/%d/%d, small %d/%d/%d; hidden with video %d",
			t.AtLayer, t.Above, t.Below, t.Empty, t.Large[0], t.Large[1], t.Large[2], t.Small[0], t.Small[1], t.Small[2],
			t.HiddenWithVideo)
	}
}
