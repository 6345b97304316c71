package monitor

import (
	"time"

	"github.com/cau-project/cau/protocol"
)

// Hop figures: each endpoint link and each relay link measured on its own transport by
// its bridge (protocol.HopFigures, cumulative counters). The monitor windows them here,
// all over the same window (Config.Window samples, 5 s by default), whoever reads them:
// loss from the TWCC statuses reported in the window, RTT the mean of the validated
// samples that arrived in it, bitrate from the bytes that crossed in it.

// minReported is the fewest TWCC statuses in a window for its loss to count (a fresh or
// nearly idle link keeps the receiver-report figure meanwhile).
const minReported = 20

type hopPoint struct {
	at time.Time
	f  protocol.HopFigures
}

// hopWindow keeps one direction's latest counters: Window intervals, so Window+1 points.
// Owned by the sampler.
type hopWindow struct {
	size    int
	pts     []hopPoint // size+1 long, made by the first add (as window's)
	head, n int
}

// add records the counters of this sample; nil (a bridge without hop figures) empties
// the window.
func (w *hopWindow) add(f *protocol.HopFigures, now time.Time) {
	if f == nil {
		w.n = 0
		return
	}
	if w.pts == nil {
		w.pts = make([]hopPoint, w.size+1)
	}
	w.pts[w.head] = hopPoint{at: now, f: *f}
	w.head = (w.head + 1) % (w.size + 1)
	if w.n < w.size+1 {
		w.n++
	}
}

func (w *hopWindow) at(i int) *hopPoint {
	return &w.pts[(w.head-1-i+2*(w.size+1))%(w.size+1)]
}

// dropped is how many RTT samples the bridge refused since the previous sample.
func (w *hopWindow) dropped() uint64 {
	if w.n < 2 {
		return 0
	}
	cur, prev := w.at(0).f.RTTDropped, w.at(1).f.RTTDropped
	if cur < prev {
		return 0 // a new connection
	}
	return cur - prev
}

// hopFigures are a hop direction over the window; each ok flag says the figure exists.
type hopFigures struct {
	lossOK                 bool
	lossPct                float64
	rttOK                  bool
	rttMs, rttMaxMs        float64
	bitrateOK              bool
	bitrateBps             float64
	reported, lost         uint64 // in the window
	rttDropped, rttSamples uint64 // in the window
}

// figures compares the newest counters with the oldest of the window, back to the latest
// restart (a counter that went down: a new connection).
func (w *hopWindow) figures() hopFigures {
	var h hopFigures
	if w.n < 2 {
		return h
	}
	newest := w.at(0)
	base := newest
	for i := 1; i < w.n; i++ {
		p := w.at(i)
		if p.f.Packets > base.f.Packets || p.f.Reported > base.f.Reported || p.f.RTTSamples > base.f.RTTSamples ||
			p.f.RTTDropped > base.f.RTTDropped || p.f.Bytes > base.f.Bytes {
			break
		}
		base = p
	}
	if base == newest {
		return h
	}
	n, b := &newest.f, &base.f
	h.reported = n.Reported - b.Reported
	if n.Lost > b.Lost { // Lost can go down: a packet counted lost that arrived late after all
		h.lost = n.Lost - b.Lost
	}
	if h.reported >= minReported {
		h.lossOK, h.lossPct = true, 100*float64(h.lost)/float64(h.reported)
	}
	h.rttSamples, h.rttDropped = n.RTTSamples-b.RTTSamples, n.RTTDropped-b.RTTDropped
	if h.rttSamples > 0 {
		h.rttOK, h.rttMs = true, (n.RTTSumMs-b.RTTSumMs)/float64(h.rttSamples)
		h.rttMaxMs = n.RTTMaxMs
	}
	if dt := newest.at.Sub(base.at).Seconds(); dt > 0 {
		h.bitrateOK, h.bitrateBps = true, 8*float64(n.Bytes-b.Bytes)/dt
	}
	return h
}

// apply puts the hop's own figures in place of the receiver-report ones where it has them.
func (h hopFigures) apply(f *Figures) {
	if h.lossOK {
		f.LossPct, f.HopMeasured = h.lossPct, true
	}
	if h.rttOK {
		f.RTTMs, f.RTTMaxMs = h.rttMs, h.rttMaxMs
	}
	if h.bitrateOK {
		f.BitrateBps = h.bitrateBps
	}
}

// HopView is one hop of the tree, named by the site at its lower end: its access links
// (kind "access": the site's endpoints with their bridge, worst endpoint) or the relay
// link between its bridge and the bridge above (kind "relay"). Direction "up" is towards
// the top of the tree (what the endpoints or the site's bridge send), "down" away from it.
type HopView struct {
	Site      string `json:"site"`
	Level     string `json:"level"`
	Kind      string `json:"kind"`
	Direction string `json:"direction"`
	Grade     Grade  `json:"grade"`
	Figures
}

// Hop kinds.
const (
	HopAccess = "access"
	HopRelay  = "relay"
)

// hopViews lists every hop with figures: each site's access links (worst endpoint per
// direction) and each bridge's uplink relay link. Caller holds m.mu.
func (m *Monitor) hopViews(snap *Snapshot) []HopView {
	type key struct{ site, kind, dir string }
	byKey := map[key]*HopView{}
	get := func(k key) *HopView {
		v := byKey[k]
		if v == nil {
			_, level := m.site(k.site)
			v = &HopView{Site: k.site, Level: level, Kind: k.kind, Direction: k.dir, Grade: GradeUnknown}
			byKey[k] = v
		}
		return v
	}
	for _, e := range m.endpoints {
		for _, d := range []struct {
			dir string
			f   Figures
			a   Assessment
		}{{"up", e.upF, e.upA}, {"down", e.downF, e.downA}} {
			if d.f.Streams == 0 {
				continue
			}
			v := get(key{e.site, HopAccess, d.dir})
			worstFigures(&v.Figures, d.f)
			v.HopMeasured = v.HopMeasured || d.f.HopMeasured
			v.UpstreamLossPct = max(v.UpstreamLossPct, d.f.UpstreamLossPct)
			v.Grade = Worst(v.Grade, d.a.Grade)
		}
	}
	for i := range snap.Relays {
		r := &snap.Relays[i]
		if r.Streams == 0 {
			continue // an idle direction: nothing to judge
		}
		child := r.Bridge
		if r.Direction != "up" {
			if m.parentBridge(r.Peer) != r.Bridge {
				continue
			}
			child = r.Peer
		}
		v := get(key{m.bridgeSite(child), HopRelay, r.Direction})
		worstFigures(&v.Figures, r.Figures)
		v.HopMeasured = v.HopMeasured || r.HopMeasured
		v.Grade = Worst(v.Grade, r.Grade)
	}
	out := make([]HopView, 0, len(byKey))
	for _, v := range byKey {
		out = append(out, *v)
	}
	return out
}
