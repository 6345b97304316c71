package monitor

import (
	"maps"
	"slices"
	"time"

	"github.com/cau-project/cau/protocol"
)

type endpointKey struct{ meeting, participant string }

// endpointState is one endpoint's windows, grade and history. Owned by the sampler;
// Detail reads it under Monitor.mu.
type endpointState struct {
	link     Link
	site     string // registry id or UnknownSite
	up, down window
	// upHop and downHop window the link's own counters (hop figures), when its bridge
	// reports them.
	upHop, downHop hopWindow
	hyst           Hysteresis
	upF, downF     Figures
	upA, downA     Assessment // this sample's, per direction
	// downStreak counts consecutive samples whose downlink alone made the grade worse.
	downStreak int
	// upstream names what the downlink's loss and jitter are attributed to, if anything.
	upstream string
	raw      Assessment // this sample's, before hysteresis
	grade    Grade      // after hysteresis
	hist     *history
	seen     time.Time // the latest sample that listed it
}

// downConfirm is how many consecutive samples a degradation seen only on the downlink
// must last before it counts (Unify Circuit's "3 consecutive breaches"); meanwhile the
// publisher upstream whose loss it may be shows its own.
const downConfirm = 3

// sampleEndpoints feeds every endpoint's figures into its windows, assesses each
// direction, adds its packets to its site's counters, and forgets endpoints that left.
func (m *Monitor) sampleEndpoints(now time.Time, links []Link) {
	points := int(m.cfg.History / m.cfg.HistoryStep)
	for _, l := range links {
		k := endpointKey{l.Meeting, l.Participant.ID}
		e := m.endpoints[k]
		if e == nil {
			e = &endpointState{hist: newHistory(m.cfg.HistoryStep, max(points, 1))}
			e.up.size, e.down.size = m.cfg.Window, m.cfg.Window
			e.upHop.size, e.downHop.size = m.cfg.Window, m.cfg.Window
			e.hyst.Hold = m.cfg.Hold
			m.endpoints[k] = e
		}
		e.link, e.seen = l, now
		e.site, _ = m.site(l.Participant.Site)
		if l.Measured {
			e.up.add(upPoint(l.Up), now)
			e.down.add(downPoint(l.Down), now)
			e.upHop.add(l.Up.Hop, now)
			e.downHop.add(l.Down.Hop, now)
		} else {
			e.up.add(point{ageMs: -1}, now)
			e.down.add(point{ageMs: -1}, now)
			e.upHop.add(nil, now)
			e.downHop.add(nil, now)
		}
		e.upF, e.downF = e.up.figures(now), e.down.figures(now)
		// The link's own figures replace the reports' where the bridge measured them: what
		// the endpoint's receiver reports miss beyond its own link's loss came missing.
		received := e.downF.LossPct
		e.upHop.figures().apply(&e.upF)
		e.downHop.figures().apply(&e.downF)
		m.rttDropped[HopAccess] += float64(e.downHop.dropped()) // the path's RTT rides the downlink
		if e.downF.HopMeasured {
			e.downF.UpstreamLossPct = max(0, received-e.downF.LossPct)
		}
		// RTT is measured once per path (on the way down); both directions carry it.
		if e.upF.RTTMs == 0 {
			e.upF.RTTMs = e.downF.RTTMs
		}
		e.upA, e.downA = m.cfg.Thresholds.Assess(e.upF), m.cfg.Thresholds.Assess(e.downF)

		s := m.siteState(e.site)
		pu, lu := e.up.delta()
		pd, ld := e.down.delta()
		s.packetsUp += pu
		s.lostUp += lu
		s.packetsDown += pd
		s.lostDown += ld
	}
	for k, e := range m.endpoints {
		if !e.seen.Equal(now) {
			delete(m.endpoints, k)
		}
	}
}

// gradeEndpoints grades every endpoint from both directions, once the relay links are
// known. An SFU forwards what it received, gaps and delays included, so a subscriber's
// receiver reports also show the loss and jitter of the publisher's uplink and of the
// relay links on the way. A downlink problem is therefore attributed upstream (and left
// out of the endpoint's grade) while another publisher of the meeting has an uplink, or
// the endpoint's bridge a relay path, at least that bad; and a downlink-only degradation
// counts after downConfirm samples, by which time its upstream cause shows. RTT and a
// silent downlink (lost) always count.
func (m *Monitor) gradeEndpoints(now time.Time, relays []RelayView) {
	type publisher struct {
		key   endpointKey
		name  string
		grade Grade
	}
	pubs := map[string][]publisher{}
	for k, e := range m.endpoints {
		if e.upF.Streams > 0 {
			pubs[k.meeting] = append(pubs[k.meeting], publisher{k, e.link.Participant.Name, e.upA.Grade})
		}
	}
	pathGrades := map[string]Grade{}
	pathGrade := func(bridge string) Grade {
		g, ok := pathGrades[bridge]
		if !ok {
			g = GradeUnknown
			for _, hop := range m.relayPathIn(bridge, relays) {
				for _, r := range []*RelayView{hop.Up, hop.Down} {
					if r != nil {
						g = Worst(g, r.RawGrade)
					}
				}
			}
			pathGrades[bridge] = g
		}
		return g
	}
	th := m.cfg.Thresholds
	for k, e := range m.endpoints {
		down := e.downA
		e.upstream = ""
		if e.downF.HopMeasured {
			// The downlink's loss is its own link's: it counts as it is, and what came
			// missing from upstream is shown as such.
			if e.downF.UpstreamLossPct >= th.LossFairPct {
				e.upstream = m.upstreamCause(k, e, relays)
			}
			e.downStreak = 0
			e.raw = combine(e.upA, down)
			e.grade = e.hyst.Update(e.raw.Grade, now)
			e.hist.record(now, e.upF, e.downF, e.grade)
			continue
		}
		if down.Grade == GradeFair || down.Grade == GradePoor {
			for _, p := range pubs[k.meeting] {
				if p.key != k && p.grade >= down.Grade {
					e.upstream = "the uplink of " + p.name
					break
				}
			}
			if e.upstream == "" && pathGrade(e.link.Bridge) >= down.Grade {
				e.upstream = "the relay path of bridge " + e.link.Bridge
			}
		}
		if e.upstream != "" {
			// Keep what is the endpoint's own: the path's delay and the reports' arrival.
			down = th.Assess(Figures{Streams: e.downF.Streams, RTTMs: e.downF.RTTMs, Silence: e.downF.Silence})
		}
		withoutDown := combine(e.upA, th.Assess(Figures{Streams: e.downF.Streams, RTTMs: e.downF.RTTMs,
			Silence: e.downF.Silence}))
		raw := combine(e.upA, down)
		if raw.Grade > withoutDown.Grade && raw.Grade != GradeLost {
			if e.downStreak++; e.downStreak < downConfirm {
				raw.Grade = withoutDown.Grade // not yet: it may be a publisher's loss arriving first
			}
		} else {
			e.downStreak = 0
		}
		e.raw = raw
		e.grade = e.hyst.Update(raw.Grade, now)
		e.hist.record(now, e.upF, e.downF, e.grade)
	}
}

// upstreamCause names where the loss an endpoint receives already missing comes from:
// the degraded relay link nearest the top on its bridge's path, else the worst degraded
// uplink of a publisher of its meeting (an access link), else nothing. Caller holds m.mu.
func (m *Monitor) upstreamCause(k endpointKey, e *endpointState, relays []RelayView) string {
	hops := m.relayPathIn(e.link.Bridge, relays)
	for i := len(hops) - 1; i >= 0; i-- {
		if r := hops[i].Down; r != nil && r.RawGrade >= GradeFair {
			return "relay " + r.Site + "→" + r.PeerSite
		}
	}
	worst, name := GradeGood, ""
	for ok, o := range m.endpoints {
		if ok.meeting == k.meeting && ok != k && o.upF.Streams > 0 && o.upA.Grade > worst {
			worst, name = o.upA.Grade, o.site
		}
	}
	if name != "" {
		return "access " + name + " (up)"
	}
	// No hop upstream is degraded: the difference between the receiver reports' loss and
	// the link's own is the two measures' noise (different intervals), not a cause.
	return ""
}

// EndpointView is one endpoint in a site's detail.
type EndpointView struct {
	Meeting string `json:"meeting"`
	ID      string `json:"id"`
	Name    string `json:"name"`
	Role    string `json:"role"`
	// ClaimedSite is the site its token named, shown when that site is not in the registry.
	ClaimedSite string    `json:"claimed_site,omitempty"`
	Bridge      string    `json:"bridge"`
	Joined      time.Time `json:"joined"`
	Measured    bool      `json:"measured"`
	Grade       Grade     `json:"grade"`
	// Now is this sample's assessment, before hysteresis.
	Now Assessment `json:"now"`
	// Upstream names what the downlink's loss and jitter are attributed to (another
	// publisher's uplink, a relay path), when they do not count in the grade.
	Upstream string  `json:"upstream,omitempty"`
	Up       Figures `json:"up"`
	Down     Figures `json:"down"`
	History  History `json:"history"`
	// EstimateBps is the bandwidth estimate of its downlink (0: none yet); Layers the
	// layer each simulcast stream reaches it at.
	EstimateBps float64                `json:"estimate_bps,omitempty"`
	Layers      []protocol.StreamLayer `json:"layers,omitempty"`
	// SIP describes a room codec's SIP call (transport, codecs, state); nil for others.
	SIP *protocol.SIPCall `json:"sip,omitempty"`
}

// SiteDetail is what the console shows for one site.
type SiteDetail struct {
	Site SiteView `json:"site"`
	// Path is the site and its ancestors, nearest first, as "id" and "name" pairs.
	Path      []PathSite     `json:"path"`
	Endpoints []EndpointView `json:"endpoints"`
	// RelayPath is, for each bridge serving the site's endpoints, the relay hops from it
	// to the top bridge.
	RelayPath []RelayHop `json:"relay_path"`
	// Chain is every hop from the top of the tree (the chair's site) down to this site,
	// top first: the top site's access links, then each site's relay link on the way, then
	// this site's access links; each with its own figures, so the weak hop stands out.
	Chain []HopView `json:"chain"`
}

// PathSite names one site of a path.
type PathSite struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Level string `json:"level"`
}

// RelayHop is one link of a relay path: the bridge below, the bridge above, and both
// directions' views (nil when the link does not exist now: no meeting needs it).
type RelayHop struct {
	From     string     `json:"from"`
	FromSite string     `json:"from_site"`
	To       string     `json:"to"`
	ToSite   string     `json:"to_site"`
	Up       *RelayView `json:"up"`
	Down     *RelayView `json:"down"`
}

// Detail returns a site's detail, or false when the site is neither in the registry nor
// UnknownSite.
func (m *Monitor) Detail(id string) (SiteDetail, bool) {
	site, level := m.site(id)
	if site != id && id != UnknownSite {
		return SiteDetail{}, false
	}
	snap := m.Snapshot()
	d := SiteDetail{Site: SiteView{ID: id, Name: m.siteName(id), Level: level, Grade: GradeUnknown,
		PathGrade: GradeUnknown, UplinkGrade: GradeUnknown}}
	if v := snap.Sites[id]; v != nil {
		d.Site = *v
	}
	if m.Tree() != nil && id != UnknownSite {
		for _, s := range m.Tree().PathToRoot(id) {
			site, _ := m.Tree().Site(s)
			d.Path = append(d.Path, PathSite{ID: s, Name: site.Name, Level: string(site.Level)})
		}
	}
	bridges := map[string]bool{}
	m.mu.Lock()
	for _, e := range m.endpoints {
		if e.site != id {
			continue
		}
		v := EndpointView{Meeting: e.link.Meeting, ID: e.link.Participant.ID, Name: e.link.Participant.Name,
			Role: e.link.Participant.Role, Bridge: e.link.Bridge, Joined: e.link.Joined, Measured: e.link.Measured,
			Grade: e.grade, Now: e.raw, Upstream: e.upstream, Up: e.upF, Down: e.downF, History: e.hist.export(),
			EstimateBps: e.link.EstimateBps, Layers: e.link.Layers, SIP: e.link.SIP}
		if id == UnknownSite {
			v.ClaimedSite = e.link.Participant.Site
		}
		d.Endpoints = append(d.Endpoints, v)
		if e.link.Bridge != "" {
			bridges[e.link.Bridge] = true
		}
	}
	for _, b := range m.bridges {
		if b.up && b.site == id {
			bridges[b.id] = true
		}
	}
	for _, b := range slices.Sorted(maps.Keys(bridges)) {
		d.RelayPath = append(d.RelayPath, m.relayPath(b, snap)...)
	}
	m.mu.Unlock()
	d.RelayPath = dedupeHops(d.RelayPath)
	d.Chain = chain(snap.Hops, d.Path, id)
	sortEndpoints(d.Endpoints)
	return d, true
}

// chain picks the hops from the top site down to site: path is site and its ancestors,
// nearest first.
func chain(hops []HopView, path []PathSite, site string) []HopView {
	sites := []string{site}
	if len(path) > 0 {
		sites = sites[:0]
		for i := len(path) - 1; i >= 0; i-- {
			sites = append(sites, path[i].ID)
		}
	}
	order := func(h HopView) int { // within a site: relay before access, down before up
		o := 0
		if h.Kind == HopAccess {
			o += 2
		}
		if h.Direction == "up" {
			o++
		}
		return o
	}
	var out []HopView
	for i, s := range sites {
		var here []HopView
		for _, h := range hops {
			top, last := i == 0, i == len(sites)-1
			if h.Site == s && (h.Kind == HopRelay || top || last) {
				here = append(here, h)
			}
		}
		slices.SortFunc(here, func(a, b HopView) int { return order(a) - order(b) })
		out = append(out, here...)
	}
	return out
}
