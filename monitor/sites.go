package monitor

import (
	"slices"
	"sort"
	"strings"
	"time"
)

// siteState is what outlives one sample for a site: its counters and open alert.
// Owned by the sampler. Sites are bounded by the registry (plus UnknownSite).
type siteState struct {
	packetsUp, lostUp, packetsDown, lostDown float64
	alert                                    *Alert
}

func (m *Monitor) siteState(id string) *siteState {
	s := m.sites[id]
	if s == nil {
		s = &siteState{}
		m.sites[id] = s
	}
	return s
}

// SiteCounters are a site's cumulative packet counters (for cau_site_packets_*_total).
type SiteCounters struct {
	Level                                    string
	PacketsUp, LostUp, PacketsDown, LostDown float64
}

// aggregateSites builds the site views from the endpoints and relay links, and opens or
// closes site alerts.
func (m *Monitor) aggregateSites(now time.Time, snap *Snapshot) {
	views := snap.Sites
	get := func(id string) *SiteView {
		v := views[id]
		if v == nil {
			_, level := m.site(id)
			v = &SiteView{ID: id, Name: m.siteName(id), Level: level, Grade: GradeUnknown,
				PathGrade: GradeUnknown, UplinkGrade: GradeUnknown}
			views[id] = v
		}
		return v
	}
	reasonGrade := map[string]Grade{} // grade of the source of each site's Reasons
	note := func(v *SiteView, g Grade, prefix string, reasons []string) {
		if g <= GradeGood || (len(v.Reasons) > 0 && g <= reasonGrade[v.ID]) {
			return
		}
		reasonGrade[v.ID] = g
		v.Reasons = v.Reasons[:0]
		for _, r := range reasons {
			v.Reasons = append(v.Reasons, prefix+r)
		}
	}
	for _, e := range m.endpoints {
		v := get(e.site)
		v.Endpoints++
		v.Grade = Worst(v.Grade, e.grade)
		note(v, e.grade, e.link.Participant.Name+": ", e.raw.Reasons)
		if e.upstream != "" && (v.AffectedBy == "" || e.upstream < v.AffectedBy) {
			v.AffectedBy = e.upstream
		}
		worstFigures(&v.Up, e.upF)
		worstFigures(&v.Down, e.downF)
		v.RTTMs = max(v.RTTMs, e.downF.RTTMs, e.upF.RTTMs)
		if e.raw.Grade != GradeUnknown && (v.MOS == 0 || e.raw.MOS < v.MOS) {
			v.MOS = e.raw.MOS
		}
		v.EstimateBps = lowestEstimate(v.EstimateBps, e.link.EstimateBps)
		v.Layers.add(e.link.Layers)
		if e.link.Bridge != "" && !slices.Contains(v.Bridges, e.link.Bridge) {
			v.Bridges = append(v.Bridges, e.link.Bridge)
		}
	}
	// Uplinks: the relay link above each bridge counts for the bridge's own site.
	for i := range snap.Relays {
		r := &snap.Relays[i]
		child := ""
		switch {
		case r.Direction == "up":
			child = r.Bridge
		case m.parentBridge(r.Peer) == r.Bridge:
			child = r.Peer
		}
		if child == "" {
			continue
		}
		v := get(m.bridgeSite(child))
		v.UplinkGrade = Worst(v.UplinkGrade, r.Grade)
		v.Grade = Worst(v.Grade, r.Grade)
		note(v, r.Grade, "relay "+r.Bridge+"→"+r.Peer+": ", r.Reasons)
	}
	for _, v := range views {
		sort.Strings(v.Bridges)
		for _, b := range v.Bridges {
			for _, hop := range m.relayPath(b, snap) {
				for _, r := range []*RelayView{hop.Up, hop.Down} {
					if r != nil {
						v.PathGrade = Worst(v.PathGrade, r.Grade)
					}
				}
			}
		}
	}
	m.siteAlerts(now, views)
	snap.Counters = make(map[string]SiteCounters, len(m.sites))
	for id, s := range m.sites {
		_, level := m.site(id)
		snap.Counters[id] = SiteCounters{Level: level, PacketsUp: s.packetsUp, LostUp: s.lostUp,
			PacketsDown: s.packetsDown, LostDown: s.lostDown}
	}
}

// worstFigures folds f into w: highest RTT, jitter, loss and silence; summed streams
// and bitrate.
func worstFigures(w *Figures, f Figures) {
	w.Streams += f.Streams
	w.BitrateBps += f.BitrateBps
	w.RTTMs = max(w.RTTMs, f.RTTMs)
	w.JitterMs = max(w.JitterMs, f.JitterMs)
	w.LossPct = max(w.LossPct, f.LossPct)
	w.Silence = max(w.Silence, f.Silence)
	w.RTTMaxMs = max(w.RTTMaxMs, f.RTTMaxMs)
}

// siteAlerts opens an alert when a site goes poor or lost, raises it when it gets worse,
// and closes it when the site is back to fair or good or has no endpoint left.
func (m *Monitor) siteAlerts(now time.Time, views map[string]*SiteView) {
	for id, v := range views {
		if v.Grade < GradePoor {
			continue
		}
		s := m.siteState(id)
		reason := strings.Join(v.Reasons, "; ")
		switch {
		case s.alert == nil:
			s.alert = m.openAlert(&Alert{Kind: "site", Subject: id, Name: v.Name, Level: v.Level, Grade: v.Grade,
				Reason: reason, Start: now})
		case v.Grade > s.alert.Grade:
			s.alert.Grade, s.alert.Reason = v.Grade, reason
			m.log.Warn("site alert raised", "site", id, "grade", v.Grade, "reason", reason)
		}
	}
	for id, s := range m.sites {
		if s.alert == nil {
			continue
		}
		v := views[id]
		switch {
		case v == nil:
			m.closeAlert(s.alert, now, "no endpoint left")
		case v.Grade == GradeGood || v.Grade == GradeFair:
			m.closeAlert(s.alert, now, "recovered")
		default:
			continue // still poor or lost, or unknown (no media to judge yet)
		}
		s.alert = nil
	}
}

// openAlert assigns an id, records the alert and logs it.
func (m *Monitor) openAlert(a *Alert) *Alert {
	m.alertID++
	a.ID = m.alertID
	m.alerts = append(m.alerts, a)
	if len(m.alerts) > m.cfg.MaxAlerts {
		drop := 0 // the oldest closed alert, else the oldest
		for i, old := range m.alerts {
			if !old.Open() {
				drop = i
				break
			}
		}
		m.alerts = slices.Delete(m.alerts, drop, drop+1)
	}
	m.log.Warn("alert", "kind", a.Kind, "subject", a.Subject, "name", a.Name, "grade", a.Grade, "reason", a.Reason)
	return a
}

func (m *Monitor) closeAlert(a *Alert, now time.Time, why string) {
	if a == nil || !a.Open() {
		return
	}
	a.End, a.EndReason = now, why
	m.log.Info("alert ended", "kind", a.Kind, "subject", a.Subject, "reason", why,
		"lasted", now.Sub(a.Start).Round(time.Second))
}

// alertsNewestFirst copies the alerts for a snapshot.
func (m *Monitor) alertsNewestFirst() []Alert {
	out := make([]Alert, len(m.alerts))
	for i, a := range m.alerts {
		out[len(out)-1-i] = *a
	}
	return out
}

// sortEndpoints orders a site's endpoints worst first, then by name.
func sortEndpoints(es []EndpointView) {
	sort.Slice(es, func(i, j int) bool {
		if es[i].Grade != es[j].Grade {
			return es[i].Grade > es[j].Grade
		}
		return es[i].Name < es[j].Name
	})
}
