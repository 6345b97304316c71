package monitor

import (
	"slices"
	"sort"
	"time"

	"github.com/cau-project/cau/protocol"
)

// relayKey is one direction of one meeting's relay link: what bridge sends to peer.
type relayKey struct{ bridge, peer, meeting string }

// relayState is one relayKey's window and grade. Owned by the sampler.
type relayState struct {
	win      window
	hop      hopWindow // the link's own counters, when the bridge reports them
	hyst     Hysteresis
	stat     protocol.RelayStat
	prevSent uint64
	prevRecv uint64
	// heard is when the peer last showed that it receives what this side sends (its
	// packets-received counter moved), or when this side started sending.
	heard   time.Time
	sending bool // packets went out since the previous sample
	fig     Figures
	raw     Assessment
	grade   Grade
	seen    time.Time
}

// sampleRelays updates every relay link direction. A direction is lost when its bridge
// keeps sending but the far bridge's received counter has not moved for LostAfter; its
// other figures come from the far bridge's receiver reports.
func (m *Monitor) sampleRelays(now time.Time, stats map[string][]protocol.RelayStat) {
	for bridge, list := range stats {
		if _, known := m.bridges[bridge]; !known {
			continue // only registered bridges become labels
		}
		for _, st := range list {
			if !st.Peer.IsRelay() {
				continue
			}
			meeting, peer := string(st.Peer.Relay.Meeting), string(st.Peer.Relay.Bridge)
			if _, known := m.bridges[peer]; !known {
				continue
			}
			k := relayKey{bridge, peer, meeting}
			r := m.relays[k]
			if r == nil {
				r = &relayState{heard: now}
				r.win.size, r.hop.size = m.cfg.Window, m.cfg.Window
				r.hyst.Hold = m.cfg.Hold
				m.relays[k] = r
			}
			r.sending = st.PacketsSent > r.prevSent
			r.prevSent, r.stat, r.seen = st.PacketsSent, st, now
			r.hop.add(st.Hop, now)
		}
	}
	for k, r := range m.relays {
		if !r.seen.Equal(now) {
			delete(m.relays, k)
			continue
		}
		back := m.relays[relayKey{k.peer, k.bridge, k.meeting}]
		switch {
		case back == nil: // the far side does not report: trust the receiver reports alone
			r.heard = now
		case back.stat.PacketsRecv > r.prevRecv || !r.sending:
			r.heard = now
		}
		if back != nil {
			r.prevRecv = back.stat.PacketsRecv
		}
		p := point{streams: r.stat.StreamsSent, rttMs: r.stat.RTTMs, jitterMs: r.stat.JitterMs,
			lossPct: r.stat.LossPct, bitrateBps: r.stat.BitrateBps, packets: float64(r.stat.PacketsSent),
			ageMs: now.Sub(r.heard).Milliseconds()}
		r.win.add(p, now)
		r.fig = r.win.figures(now)
		r.hop.figures().apply(&r.fig)
		m.rttDropped[HopRelay] += float64(r.hop.dropped())
		r.raw = m.cfg.Thresholds.Assess(r.fig)
		r.grade = r.hyst.Update(r.raw.Grade, now)
	}
}

// relayViews sums each directed bridge pair over meetings: worst grade, RTT, jitter and
// loss; total streams and bitrate.
func (m *Monitor) relayViews() []RelayView {
	byPair := map[[2]string]*RelayView{}
	for k, r := range m.relays {
		pair := [2]string{k.bridge, k.peer}
		v := byPair[pair]
		if v == nil {
			v = &RelayView{Bridge: k.bridge, Peer: k.peer, Grade: GradeUnknown, RawGrade: GradeUnknown,
				Site: m.bridgeSite(k.bridge), PeerSite: m.bridgeSite(k.peer)}
			v.Direction = "down"
			if m.parentBridge(k.bridge) == k.peer {
				v.Direction = "up"
			}
			byPair[pair] = v
		}
		v.Meetings++
		v.EstimateBps = lowestEstimate(v.EstimateBps, r.stat.EstimateBps)
		v.Layers.add(r.stat.Layers)
		if r.grade > v.Grade || v.Grade == GradeUnknown {
			v.Reasons = r.raw.Reasons
		}
		v.Grade = Worst(v.Grade, r.grade)
		v.RawGrade = Worst(v.RawGrade, r.raw.Grade)
		v.Streams += r.fig.Streams
		v.BitrateBps += r.fig.BitrateBps
		v.RTTMs = max(v.RTTMs, r.fig.RTTMs)
		v.RTTMaxMs = max(v.RTTMaxMs, r.fig.RTTMaxMs)
		v.JitterMs = max(v.JitterMs, r.fig.JitterMs)
		v.LossPct = max(v.LossPct, r.fig.LossPct)
		v.HopMeasured = v.HopMeasured || r.fig.HopMeasured
		v.Silence = max(v.Silence, r.fig.Silence)
	}
	out := make([]RelayView, 0, len(byPair))
	for _, v := range byPair {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Bridge != out[j].Bridge {
			return out[i].Bridge < out[j].Bridge
		}
		return out[i].Peer < out[j].Peer
	})
	return out
}

func (m *Monitor) bridgeSite(id string) string {
	if b := m.bridges[id]; b != nil {
		return b.site
	}
	return UnknownSite
}

// parentBridge is the bridge above id, chosen as signaling does: the live bridge of the
// nearest strict ancestor site (preferring one id already has a relay link with, then
// the lowest id), else a bridge at the root site. "" for the top bridge or without a
// registry. Caller holds m.mu.
func (m *Monitor) parentBridge(id string) string {
	b := m.bridges[id]
	if b == nil || m.cfg.Tree == nil || b.site == UnknownSite {
		return ""
	}
	at := func(site string) string {
		var best string
		linked := false
		for _, c := range m.bridges {
			if !c.up || c.site != site || c.id == id {
				continue
			}
			l := m.linked(id, c.id)
			if best == "" || (l && !linked) || (l == linked && c.id < best) {
				best, linked = c.id, l
			}
		}
		return best
	}
	for _, s := range m.cfg.Tree.Ancestors(b.site) {
		if p := at(s); p != "" {
			return p
		}
	}
	if root := m.cfg.Tree.Root().ID; b.site != root {
		return at(root)
	}
	return ""
}

// linked reports whether a and b have a relay link in some meeting. Caller holds m.mu.
func (m *Monitor) linked(a, b string) bool {
	for k := range m.relays {
		if (k.bridge == a && k.peer == b) || (k.bridge == b && k.peer == a) {
			return true
		}
	}
	return false
}

// relayPath returns the hops from bridge up to the top, with the links' current views.
// Caller holds m.mu.
func (m *Monitor) relayPath(bridge string, snap *Snapshot) []RelayHop {
	return m.relayPathIn(bridge, snap.Relays)
}

// relayPathIn is relayPath over a list of relay views. Caller holds m.mu.
func (m *Monitor) relayPathIn(bridge string, relays []RelayView) []RelayHop {
	var out []RelayHop
	seen := map[string]bool{bridge: true}
	for cur := bridge; ; {
		up := m.parentBridge(cur)
		if up == "" || seen[up] {
			return out
		}
		seen[up] = true
		hop := RelayHop{From: cur, FromSite: m.bridgeSite(cur), To: up, ToSite: m.bridgeSite(up)}
		for i := range relays {
			r := &relays[i]
			switch {
			case r.Bridge == cur && r.Peer == up:
				hop.Up = r
			case r.Bridge == up && r.Peer == cur:
				hop.Down = r
			}
		}
		out = append(out, hop)
		cur = up
	}
}

// dedupeHops drops repeated hops (two bridges of a site share the path above).
func dedupeHops(hops []RelayHop) []RelayHop {
	seen := map[[2]string]bool{}
	return slices.DeleteFunc(hops, func(h RelayHop) bool {
		k := [2]string{h.From, h.To}
		if seen[k] {
			return true
		}
		seen[k] = true
		return false
	})
}
