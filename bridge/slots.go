package bridge

import (
	"fmt"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/sfu"
)

// Slots (protocol/slots.go): a peer that asked for them (UseSlots) receives its meeting's
// cameras and microphones in a fixed set of sfu slots fed by the meeting's selector,
// instead of one track per stream. Signaling subscribes it as it would any peer (so relay
// links and Last-N see the same subscriptions); a subscription to a camera or microphone
// then only joins the stream to the meeting's selector, and the first one gives the peer
// its slots: AudioN + slotPins audio slots and VideoN video slots. Screen shares are
// forwarded as tracks of their own, as before.

// slotPins is the number of audio slots over AudioN: the chair and the floor holder, the
// sources signaling pins.
const slotPins = 2

// UseSlots makes peer receive in slots from its next subscriptions on.
func (a *Agent) UseSlots(id ids.PeerID) error {
	ap, err := a.peer(id)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ap.useSlots = true
	return nil
}

// slotted reports whether a subscription of ap to key in meeting goes to its slots.
// Caller holds a.mu.
func slotted(ap *agentPeer, key ids.StreamKey, meeting ids.MeetingID) bool {
	return ap.useSlots && meeting != "" && selectable(key)
}

// followSlots gives ap its slots, if it has none yet, fed by meeting's selector. Caller
// holds a.mu.
func (a *Agent) followSlots(ap *agentPeer, meeting ids.MeetingID) error {
	ms := a.selectors[meeting]
	if ms == nil || ap.peer == nil {
		return nil
	}
	if ap.slots == nil {
		p := ms.sel.Params()
		set, err := ap.peer.AddSlots(sfu.SlotSetParams{Audio: p.AudioN + slotPins, Video: p.VideoN,
			Self: string(ap.id.Endpoint.Participant), OnMap: a.reportSlots(ap.id)})
		if err != nil {
			return fmt.Errorf("slots for %s: %w", ap.id.String(), err)
		}
		set.SetCaps(slotCaps(a.views[ap.id], a.layerCaps, ap.id))
		ap.slots, ap.slotMeeting = set, meeting
	}
	if ap.slotMeeting == meeting {
		ms.sel.Follow(ap.slots)
	}
	return nil
}

// refollow has the slot peers of meeting follow its new selector. Caller holds a.mu.
func (a *Agent) refollow(meeting ids.MeetingID, ms *meetingSelector) {
	for _, ap := range a.peers {
		if ap.slots != nil && ap.slotMeeting == meeting {
			ms.sel.Follow(ap.slots)
		}
	}
}

// unfollow takes ap's slots out of their selector (the peer is forgotten). Caller holds
// a.mu.
func (a *Agent) unfollow(ap *agentPeer) {
	if ap.slots == nil {
		return
	}
	if ms := a.selectors[ap.slotMeeting]; ms != nil {
		ms.sel.Unfollow(ap.slots)
	}
}

// reportSlots passes a peer's slot map to Events.Slots (on the selector's goroutine).
func (a *Agent) reportSlots(peer ids.PeerID) func([]sfu.SlotSource) {
	return func(m []sfu.SlotSource) {
		if a.ev.Slots == nil {
			return
		}
		out := make([]protocol.SlotSource, len(m))
		for i, s := range m {
			out[i] = protocol.SlotSource{Stream: s.Slot.StreamID(), Kind: s.Slot.Kind().String(),
				Participant: ids.ParticipantID(s.Source)}
		}
		a.ev.Slots(peer, out)
	}
}

// SlotsOf is what peer's slots carry now, as the bridge points them (nil for a peer
// without slots).
func (a *Agent) SlotsOf(id ids.PeerID) []protocol.SlotSource {
	a.mu.Lock()
	ap := a.peers[id]
	var set *sfu.SlotSet
	if ap != nil {
		set = ap.slots
	}
	a.mu.Unlock()
	if set == nil {
		return nil
	}
	var out []protocol.SlotSource
	for _, s := range append(set.Audio(), set.Video()...) {
		out = append(out, protocol.SlotSource{Stream: s.StreamID(), Kind: s.Kind().String(),
			Participant: ids.ParticipantID(s.Source())})
	}
	return out
}

// slotCaps is the cap of each participant's camera tile in view (the peer's view, by
// stream), within the peer's own cap (CapLayers), for its video slots (sfu.SlotSet.SetCaps:
// a slot's layer follows the tile that shows the participant it carries now).
func slotCaps(view map[ids.StreamKey]int, layerCaps map[ids.PeerID]int, peer ids.PeerID) (map[string]int, int) {
	own, capped := layerCaps[peer]
	others := topLayer
	if capped {
		others = min(others, own)
	}
	caps := make(map[string]int, len(view))
	for k, c := range view {
		if k.Source != protocol.SourceCamera {
			continue
		}
		if capped {
			c = min(c, own)
		}
		caps[string(k.Participant)] = c
	}
	return caps, others
}

// slotLayers lists the layers of ap's video slots that forward a simulcast source, as
// streams (the camera of the participant each carries), for the heartbeat's per-site
// layers. Caller holds a.mu.
func slotLayers(ap *agentPeer) []protocol.StreamLayer {
	var out []protocol.StreamLayer
	for _, s := range ap.slots.Video() {
		src := s.Source()
		if src == "" || !s.Simulcast() {
			continue // as layersByPeer: only the layers this bridge chooses
		}
		cur, target := s.Layer()
		out = append(out, protocol.StreamLayer{Key: ids.StreamKey{Participant: ids.ParticipantID(src),
			Source: protocol.SourceCamera}, Layer: cur, Target: target, Paused: cur < 0 && target < 0})
	}
	return out
}

// SlotLayersOf is what peer's video slots of simulcast sources forward now, by the
// camera each carries: the layer, the one switched to, and Paused while nothing is
// forwarded (a hidden tile, or before the first keyframe). Nil for a peer without slots.
func (a *Agent) SlotLayersOf(id ids.PeerID) []protocol.StreamLayer {
	a.mu.Lock()
	defer a.mu.Unlock()
	ap := a.peers[id]
	if ap == nil || ap.slots == nil {
		return nil
	}
	return slotLayers(ap)
}
