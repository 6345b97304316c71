package signaling

import (
	"maps"
	"slices"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
)

// The dominant speaker, Last-N and pins (protocol/speaker.go). Every bridge of a meeting
// selects on its own (package sfu's Selector) and reports its choice; the meeting passes
// on the choice of the bridge nearest the root of the bridge tree, which sees the
// loudest candidates of every subtree, to every participant as protocol.Speaker.
//
// Pins go the other way. The bridges pin, for the whole meeting (bridge.Agent.Pin), the
// participants of the chair site, of the sites holding the floor and of the sites the
// chair pinned: their camera and microphone are always forwarded and come first on every
// link's bandwidth. A site another participant pins for itself is pinned on that
// participant's own link only (bridge.Agent.PinFor).

// speakerView is one bridge's report. Guarded by meeting.mu.
type speakerView struct {
	dominant ids.ParticipantID
	lastN    []string
}

// speakerReport is a bridge's new selection for meeting (a bridge event).
func (s *Server) speakerReport(b Bridge, meeting ids.MeetingID, dominant ids.ParticipantID, lastN []ids.ParticipantID) {
	s.mu.Lock()
	m := s.meetings[meeting]
	s.mu.Unlock()
	if m == nil {
		return
	}
	depth := s.focus.depth(b)
	v := speakerView{dominant: dominant, lastN: make([]string, len(lastN))}
	for i, p := range lastN {
		v.lastN[i] = string(p)
	}
	slices.Sort(v.lastN)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.views[b.ID()] = v
	m.viewDepth[b.ID()] = depth
	m.sendSpeaker(nil)
}

// depth is how many bridges are above b (0 for the top bridge).
func (f *focus) depth(b Bridge) int {
	n := 0
	seen := map[ids.BridgeID]bool{}
	for x := f.parent(b); x != nil && !seen[x.ID()]; x = f.parent(x) {
		seen[x.ID()] = true
		n++
	}
	return n
}

// speakerState is what every participant is told now, less its own pins. Caller holds
// m.mu.
func (m *meeting) speakerState() protocol.Speaker {
	var best ids.BridgeID
	found := false
	for id := range m.views {
		if m.srv.focus.byID(id) == nil {
			delete(m.views, id) // the bridge went down
			delete(m.viewDepth, id)
			continue
		}
		if !found || m.viewDepth[id] < m.viewDepth[best] || (m.viewDepth[id] == m.viewDepth[best] && id < best) {
			best, found = id, true
		}
	}
	st := protocol.Speaker{LastN: []string{}, Pinned: slices.Sorted(maps.Keys(m.pinned))}
	if !found {
		return st
	}
	v := m.views[best]
	st.LastN = v.lastN
	if v.dominant != "" {
		st.Dominant = string(v.dominant)
		st.Site = m.siteOf(string(v.dominant))
	}
	return st
}

// siteOf is a participant's site, "" if it is not in the meeting. Caller holds m.mu.
func (m *meeting) siteOf(id string) string {
	if s := m.participants[id]; s != nil {
		return s.self.Site
	}
	return m.remote[id].Participant.Site
}

// sendSpeaker sends the speaker state to every participant whose view of it changed, or
// to only (not nil) whatever it had. Caller holds m.mu.
func (m *meeting) sendSpeaker(only *session) {
	st := m.speakerState()
	for _, o := range m.participants {
		if only != nil && o != only {
			continue
		}
		mine := m.mine[o.self.ID]
		msg := st
		if len(mine) > 0 {
			msg.Mine = slices.Sorted(maps.Keys(mine))
		}
		if only == nil && speakerEqual(m.told[o.self.ID], msg) {
			continue
		}
		m.told[o.self.ID] = msg
		o.reply(protocol.KindSpeaker, "", msg)
	}
}

func speakerEqual(a, b protocol.Speaker) bool {
	return a.Dominant == b.Dominant && a.Site == b.Site && slices.Equal(a.LastN, b.LastN) &&
		slices.Equal(a.Pinned, b.Pinned) && slices.Equal(a.Mine, b.Mine)
}

// handlePin pins or unpins a site: for the whole meeting when the chair (or an admin)
// asks, else on the asker's own link.
func (s *session) handlePin(_ protocol.Envelope, p protocol.Pin) error {
	m := s.meeting
	m.mu.Lock()
	defer m.mu.Unlock()
	set := m.pinned
	wide := s.claims.Role == auth.RoleChair || s.claims.Role == auth.RoleAdmin
	if !wide {
		set = m.mine[s.self.ID]
		if set == nil {
			set = map[string]bool{}
			m.mine[s.self.ID] = set
		}
	}
	if p.On {
		if len(set) >= maxPins && !set[p.Site] {
			return clientErr(protocol.CodeBadMessage, "at most %d sites may be pinned", maxPins)
		}
		set[p.Site] = true
	} else {
		delete(set, p.Site)
	}
	s.log.Info("pin", "site", p.Site, "on", p.On, "meeting_wide", wide)
	m.reconcile() // applies the pins on the bridges
	if wide {
		m.sendSpeaker(nil)
	} else {
		m.sendSpeaker(s)
	}
	return nil
}

// maxPins bounds the sites one participant, or the chair for the meeting, may pin: pins
// come first on every link, so many of them would crowd out Last-N.
const maxPins = 4

// pinSent names a pin a bridge was told of: meeting-wide (peer zero) or for one peer.
type pinSent struct {
	bridge      ids.BridgeID
	peer        ids.PeerID
	participant ids.ParticipantID
}

// wantedPins lists the pins the meeting's bridges should hold now. Caller holds m.mu.
func (m *meeting) wantedPins(bridges map[ids.BridgeID]Bridge) map[pinSent]bool {
	wide := map[string]bool{}
	maps.Copy(wide, m.pinned)
	if m.floor.ChairSite != "" {
		wide[m.floor.ChairSite] = true
	}
	for _, g := range m.floor.Speakers {
		wide[g.Site] = true
	}
	bySite := map[string][]ids.ParticipantID{}
	for id, s := range m.participants {
		bySite[s.self.Site] = append(bySite[s.self.Site], ids.ParticipantID(id))
	}
	for id, p := range m.remote {
		bySite[p.Participant.Site] = append(bySite[p.Participant.Site], ids.ParticipantID(id))
	}
	out := map[pinSent]bool{}
	for site := range wide {
		for _, p := range bySite[site] {
			for b := range bridges {
				out[pinSent{bridge: b, participant: p}] = true
			}
		}
	}
	for id, sites := range m.mine {
		s := m.participants[id]
		if s == nil || s.bridge == nil {
			continue
		}
		for site := range sites {
			for _, p := range bySite[site] {
				if string(p) != id {
					out[pinSent{bridge: s.bridge.ID(), peer: s.peerID, participant: p}] = true
				}
			}
		}
	}
	return out
}

// syncPins tells the bridges the pins that changed. Caller holds m.mu (reconcile).
func (m *meeting) syncPins(bridges map[ids.BridgeID]Bridge) {
	want := m.wantedPins(bridges)
	send := func(k pinSent, on bool) {
		b := bridges[k.bridge]
		if b == nil {
			b = m.srv.focus.byID(k.bridge)
		}
		if b == nil {
			return
		}
		cmd := protocol.BridgePin{Meeting: m.id, Participant: k.participant, Peer: k.peer, On: on}
		m.ops.push(func() {
			if err := b.Pin(cmd); err != nil {
				m.srv.log.Debug("pin", "bridge", b.ID(), "participant", k.participant, "err", err)
			}
		})
	}
	for k := range m.pins {
		if !want[k] {
			delete(m.pins, k)
			send(k, false)
		}
	}
	for k := range want {
		if !m.pins[k] {
			m.pins[k] = true
			send(k, true)
		}
	}
}
