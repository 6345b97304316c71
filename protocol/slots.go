package protocol

import "github.com/cau-project/cau/ids"

// Slots (issue 10): an endpoint that joins with Join.Slots receives the meeting's cameras
// and microphones in a fixed set of tracks, negotiated once ("slot-a0".. for audio,
// "slot-v0".. for video, each its own stream), instead of one track per published stream;
// the bridge points each slot at one of the sources Last-N and the dominant speaker
// select, and tells the endpoint which (KindSlots) before the slot's media changes.
// Screen shares still come as their own tracks.
const (
	// KindSlots (server → client) maps the endpoint's slots to the participants they
	// carry now (Slots). Sent each time the map changes.
	KindSlots Kind = "slots"
	// KindBridgeSlots (signaling → bridge) gives a peer slots (BridgeSlots): its camera
	// and microphone subscriptions in a meeting feed them.
	KindBridgeSlots Kind = "use_slots"
	// KindBridgeSlotMap (bridge → signaling) reports a peer's slot map (BridgeSlotMap).
	KindBridgeSlotMap Kind = "slot_map"
)

// SlotSource is what one slot carries.
type SlotSource struct {
	// Stream is the slot's stream id, which is also its track id.
	Stream string `json:"stream"`
	Kind   string `json:"kind"` // "audio" or "video"
	// Participant is whose camera or microphone the slot carries; empty: nothing now.
	Participant ids.ParticipantID `json:"participant,omitempty"`
}

// Slots is the whole slot map of an endpoint.
type Slots struct {
	Slots []SlotSource `json:"slots"`
}

// BridgeSlots makes Peer receive in slots (bridge.Agent.UseSlots); sent before the
// peer's subscriptions.
type BridgeSlots struct {
	Peer ids.PeerID `json:"peer"`
}

// PeerID is the peer the command is about.
func (m BridgeSlots) PeerID() ids.PeerID { return m.Peer }

// BridgeSlotMap is a peer's slot map on its bridge.
type BridgeSlotMap struct {
	Peer  ids.PeerID   `json:"peer"`
	Slots []SlotSource `json:"slots"`
}
