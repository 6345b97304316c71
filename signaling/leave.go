package signaling

import (
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/relayplan"
)

// leaveKeepsPlan reports whether the meeting's plan without s, which has just been taken
// out of m.participants, is the plan in place less s's own forwardings, so that a leave
// can drop those (forgetForwards) instead of planning the meeting again. s must have
// published nothing and pinned nothing for itself (the caller checks). Then the plan
// changes only if s's bridge stops being occupied or stops needing a stream relayed to
// it, or a pin names s or its peer. The answer looks at the pins and at participants
// until it finds two others on s's bridge: under a storm's teardown, where most share
// a bridge, a handful. Caller holds m.mu.
func (m *meeting) leaveKeepsPlan(s *session) bool {
	if !m.planExact || s.sendOnly {
		return false // a send-only endpoint's bridge is in the tree without a subscriber
	}
	pid := ids.ParticipantID(s.self.ID)
	var bid ids.BridgeID
	if s.bridge != nil {
		bid = s.bridge.ID()
	}
	for k := range m.pins {
		if k.participant == pid || (s.bridge != nil && k.bridge == bid && k.peer == s.peerID) {
			return false
		}
	}
	if s.bridge == nil {
		return true // not placed: in no plan
	}
	// A stream is relayed to a bridge while a subscriber there is not its publisher:
	// with two others left on the bridge that holds for every stream. With one, it holds
	// for every stream but that one's own, which come from this bridge and need no relay
	// to it; checked all the same (a few streams), should a stream's origin ever differ
	// from its publisher's bridge.
	var other *session
	for _, o := range m.participants {
		m.leaveScans++
		if o.bridge == nil || o.sendOnly || o.bridge.ID() != bid {
			continue
		}
		if other != nil {
			return true
		}
		other = o
	}
	if other == nil {
		return false // the bridge empties: links and relayed streams change
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
