package monitor

import (
	"math"
	"time"

	"github.com/cau-project/cau/protocol"
)

// point is one sample of one direction of a link.
type point struct {
	streams                              int
	rttMs, jitterMs, lossPct, bitrateBps float64
	// packets and lost are cumulative counts when counted is true (an endpoint's uplink,
	// whose bridge counts sequence gaps); otherwise lossPct is the loss of the interval
	// since the previous receiver report, and the window averages it.
	packets, lost float64
	counted       bool
	ageMs         int64 // since the latest packet or report; -1 if none yet
}

// upPoint turns an endpoint's uplink figures into a point. The bridge reports the
// uplink's loss as a share of everything expected since the streams began, with the
// received packet count; the lost count follows (lost = p/(1−p)·received, exact unless
// duplicates arrived), so the window can take the loss of its own interval.
func upPoint(f protocol.LinkFigures) point {
	p := point{streams: f.Streams, rttMs: f.RTTMs, jitterMs: f.JitterMs, lossPct: f.LossPct,
		bitrateBps: f.BitrateBps, packets: float64(f.Packets), counted: true, ageMs: f.LastPacketAgeMs}
	if r := f.LossPct / 100; r > 0 && r < 1 {
		p.lost = math.Round(r / (1 - r) * p.packets) // the bridge's counts are integers
	}
	return p
}

// downPoint turns an endpoint's downlink figures (from its receiver reports) into a point.
// packets counts what the bridge sent; lost is left for the window to estimate.
func downPoint(f protocol.LinkFigures) point {
	return point{streams: f.Streams, rttMs: f.RTTMs, jitterMs: f.JitterMs, lossPct: f.LossPct,
		bitrateBps: f.BitrateBps, packets: float64(f.Packets), ageMs: f.LastPacketAgeMs}
}

// maxWindow bounds Config.Window.
const maxWindow = 30

// window holds the latest samples of one direction: Window of them for averages, plus
// one before them as the base of counted loss. It is owned by the sampler goroutine.
type window struct {
	size int // samples averaged (Config.Window)
	// pts is the ring, size+1 long, made by the first add: a fixed array of maxWindow+1
	// was 2.2 kB per direction and endpoint where the default window uses 6 points
	// (issue 11).
	pts   []point
	head  int // index of the next write
	n     int
	since time.Time // since when streams > 0 with no packet or report yet; zero otherwise
}

func (w *window) add(p point, now time.Time) {
	switch {
	case p.streams == 0 || p.ageMs >= 0:
		w.since = time.Time{}
	case w.since.IsZero():
		w.since = now
	}
	if w.pts == nil {
		w.pts = make([]point, w.size+1)
	}
	w.pts[w.head] = p
	w.head = (w.head + 1) % (w.size + 1)
	if w.n < w.size+1 {
		w.n++
	}
}

// at returns the i-th newest point (0 = newest).
func (w *window) at(i int) *point {
	return &w.pts[(w.head-1-i+2*(w.size+1))%(w.size+1)]
}

// figures summarises the window: means of RTT (measured samples only), jitter and
// bitrate over the newest size samples; loss from the counters where counted, else the
// mean of the reported fractions; silence from the newest sample.
func (w *window) figures(now time.Time) Figures {
	if w.n == 0 {
		return Figures{}
	}
	newest := w.at(0)
	f := Figures{Streams: newest.streams}
	if newest.ageMs >= 0 {
		f.Silence = time.Duration(newest.ageMs) * time.Millisecond
	} else if !w.since.IsZero() {
		f.Silence = now.Sub(w.since)
	}
	var nRTT, nAvg int
	for i := 0; i < min(w.n, w.size); i++ {
		p := w.at(i)
		if p.streams == 0 {
			break // the direction was idle before this: average only the live stretch
		}
		nAvg++
		f.JitterMs += p.jitterMs
		f.BitrateBps += p.bitrateBps
		f.LossPct += p.lossPct
		if p.rttMs > 0 {
			nRTT++
			f.RTTMs += p.rttMs
		}
	}
	if nAvg > 0 {
		f.JitterMs /= float64(nAvg)
		f.BitrateBps /= float64(nAvg)
		f.LossPct /= float64(nAvg)
	}
	if nRTT > 0 {
		f.RTTMs /= float64(nRTT)
	}
	if newest.counted {
		if loss, ok := w.countedLoss(); ok {
			f.LossPct = loss
		} else {
			f.LossPct = newest.lossPct // a fresh stream: its loss so far
		}
	}
	return f
}

// countedLoss is the loss between the oldest and newest samples, from the cumulative
// counters, back to the latest counter reset (a new stream set restarts them).
func (w *window) countedLoss() (float64, bool) {
	newest := w.at(0)
	base := newest
	for i := 1; i < w.n; i++ {
		p := w.at(i)
		if !p.counted || p.packets > base.packets || p.lost > base.lost {
			break // counters went backwards between p and base: base starts a new run
		}
		base = p
	}
	expected := (newest.packets + newest.lost) - (base.packets + base.lost)
	if base == newest || expected <= 0 {
		return 0, false
	}
	return 100 * (newest.lost - base.lost) / expected, true
}

// delta estimates the packets lost between the two newest samples: counted exactly
// where counted, else the packets sent times the reported loss. It feeds the
// cau_site_packets_lost_total counters.
func (w *window) delta() (packets, lost float64) {
	if w.n < 2 {
		return 0, 0
	}
	cur, prev := w.at(0), w.at(1)
	if cur.packets < prev.packets {
		return 0, 0 // counters restarted
	}
	packets = cur.packets - prev.packets
	if cur.counted {
		if cur.lost >= prev.lost {
			lost = cur.lost - prev.lost
		}
		return packets, lost
	}
	return packets, packets * cur.lossPct / 100
}

// Series in a history, in this order in History.Series.
const (
	seriesRTT = iota
	seriesJitterUp
	seriesJitterDown
	seriesLossUp
	seriesLossDown
	seriesBitrateUp
	seriesBitrateDown
	nSeries
)

var seriesNames = [nSeries]string{"rtt_ms", "jitter_up_ms", "jitter_down_ms", "loss_up_pct",
	"loss_down_pct", "bitrate_up_bps", "bitrate_down_bps"}

// history keeps one point per step for the sparklines: float32 figures and a grade per
// point, in rings of fixed length (10 minutes at 5 s: 120 points, under 4 KB per
// endpoint). Owned by the sampler; read under Monitor.mu.
type history struct {
	step   time.Duration
	due    time.Time // when the next point is recorded
	head   int
	n      int
	last   time.Time // time of the newest point
	series [nSeries][]float32
	grades []Grade
}

func newHistory(step time.Duration, points int) *history {
	h := &history{step: step, grades: make([]Grade, points)}
	for i := range h.series {
		h.series[i] = make([]float32, points)
	}
	return h
}

// record adds a point if one is due.
func (h *history) record(now time.Time, up, down Figures, g Grade) {
	// Samples come once a second, a few milliseconds either way: allow a tenth of a step
	// early so that the points stay one step apart instead of slipping to the next sample.
	if now.Before(h.due.Add(-h.step / 10)) {
		return
	}
	h.due = h.due.Add(h.step)
	if h.due.Before(now) {
		h.due = now.Add(h.step)
	}
	h.last = now
	missing := func(f Figures, v float64) float32 {
		if f.Streams == 0 {
			return -1
		}
		return float32(v)
	}
	rtt := float32(-1)
	if r := max(up.RTTMs, down.RTTMs); r > 0 {
		rtt = float32(r)
	}
	vals := [nSeries]float32{rtt, missing(up, up.JitterMs), missing(down, down.JitterMs),
		missing(up, up.LossPct), missing(down, down.LossPct), missing(up, up.BitrateBps),
		missing(down, down.BitrateBps)}
	for i, v := range vals {
		h.series[i][h.head] = v
	}
	h.grades[h.head] = g
	h.head = (h.head + 1) % len(h.grades)
	if h.n < len(h.grades) {
		h.n++
	}
}

// History is an endpoint's sparkline data, oldest point first. A value of -1 means no
// figure (the direction carried no stream, or RTT was not measured yet).
type History struct {
	StepSeconds float64              `json:"step_s"`
	End         time.Time            `json:"end"`
	Series      map[string][]float32 `json:"series"`
	Grades      []Grade              `json:"grades"`
}

// export copies the rings into a History.
func (h *history) export() History {
	out := History{StepSeconds: h.step.Seconds(), End: h.last, Series: make(map[string][]float32, nSeries),
		Grades: make([]Grade, h.n)}
	start := (h.head - h.n + len(h.grades)) % len(h.grades)
	for s := range h.series {
		v := make([]float32, h.n)
		for i := range h.n {
			v[i] = h.series[s][(start+i)%len(h.grades)]
		}
		out.Series[seriesNames[s]] = v
	}
	for i := range h.n {
		out.Grades[i] = h.grades[(start+i)%len(h.grades)]
	}
	return out
}
