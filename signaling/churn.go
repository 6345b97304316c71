package signaling

import (
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/relayplan"
)

// A meeting's start and end are storms of joins and leaves under its lock: 258 of each
// within a minute, often one meeting's leaves while the next one's joins wait. A full
// plan (reconcile) is O(participants × streams) and was made for each of them (166 s of
// summed lock wait in a back-to-back storm, mostly leaves). Most of them change the plan
// only by the endpoint's own forwardings: those are added or dropped here, and the
// plan in place stays the plan, as a property test proves (churn_internal_test.go).

// leaveKeepsPlan reports whether the meeting's plan without s, which has just been taken
// out of m.participants, is the plan in place less s's own forwardings, so that a leave
// can drop those (forgetForwards) instead of planning the meeting again. s must have
// published nothing and pinned nothing for itself (the caller checks). Then the plan
// changes only if s's bridge stops being occupied or stops needing a stream relayed to
// it, or a pin names s. Caller holds m.mu.
func (m *meeting) leaveKeepsPlan(s *session) bool {
	if !m.planExact || s.sendOnly {
		return false // a send-only endpoint's bridge is in the tree without a subscriber
	}
	pid := ids.ParticipantID(s.self.ID)
	for k := range m.pins {
		if k.participant == pid || (s.bridge != nil && k.bridge == s.bridge.ID() && k.peer == s.peerID) {
			return false
		}
	}
	return s.bridge == nil || m.othersHold(s, s.bridge.ID()) // not placed: in no plan
}

// joinKeepsPlan reports whether the plan with s, which has just entered m.participants
// with nothing published or adopted and no session replaced, is the plan in place plus
// s's own forwardings (subscribeJoiner): its bridge already holds another subscriber,
// and no pin would name it. Caller holds m.mu.
func (m *meeting) joinKeepsPlan(s *session) bool {
	if !m.planExact || s.sendOnly || len(m.mine[s.self.ID]) > 0 {
		return false
	}
	site := s.self.Site
	if m.pinned[site] || m.floor.ChairSite == site {
		return false
	}
	for _, g := range m.floor.Speakers {
		if g.Site == site {
			return false
		}
	}
	for _, sites := range m.mine { // the participants who pinned sites for themselves
		if sites[site] {
			return false
		}
	}
	return s.bridge == nil || m.othersHold(s, s.bridge.ID())
}

// othersHold reports whether subscribers other than s on bridge bid keep it in the plan
// as it is: occupied, and every stream relayed to it. A stream is relayed to a bridge
// while a subscriber there is not its publisher, so two others are enough. With one,
// that holds for every stream but that one's own, which come from this bridge and need
// no relay to it; checked all the same (a few streams), should a stream's origin ever
// differ from its publisher's bridge. It looks at participants until it finds two
// others there: under a storm, where most share a bridge, a handful. Caller holds m.mu.
func (m *meeting) othersHold(s *session, bid ids.BridgeID) bool {
	var other *session
	for _, o := range m.participants {
		if o == s {
			continue
		}
		m.planScans++
		if o.bridge == nil || o.sendOnly || o.bridge.ID() != bid {
			continue
		}
		if other != nil {
			return true
		}
		other = o
	}
	if other == nil {
		return false // the bridge empties, or is new: links and relayed streams change
	}
	for key := range m.streams {
		if key.Participant == ids.ParticipantID(other.self.ID) {
			return false
		}
	}
	return true
}

// forgetForwards drops the records of what s's peer was forwarded: one per stream, as
// the plan has them, without commands (the peer closes with its session). Caller holds
// m.mu.
func (m *meeting) forgetForwards(s *session) {
	if s.bridge == nil {
		return
	}
	for key := range m.streams {
		delete(m.fwd, relayplan.Forward{Bridge: s.bridge.ID(), Peer: s.peerID, Key: key})
	}
}

// subscribeJoiner records and queues what the plan forwards to s's peer: every stream
// the floor lets through but its own, in one op as reconcile queues a peer's. Caller
// holds m.mu.
func (m *meeting) subscribeJoiner(s *session) {
	if s.bridge == nil {
		return
	}
	pid, bid := ids.ParticipantID(s.self.ID), s.bridge.ID()
	var fs []relayplan.Forward
	var tracks []relayplan.Track
	for key, st := range m.streams {
		ps, ok := m.planStream(key, st)
		if !ok || key.Participant == pid {
			continue
		}
		f := relayplan.Forward{Bridge: bid, Peer: s.peerID, Key: key}
		t := relayplan.Track{TrackID: key.String(), StreamID: ps.StreamID}
		m.fwd[f] = t
		fs, tracks = append(fs, f), append(tracks, t)
	}
	if len(fs) > 0 {
		m.pushSubscribes(s.bridge, fs, tracks, true)
	}
}
