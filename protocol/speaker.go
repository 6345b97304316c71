package protocol

import "github.com/cau-project/cau/ids"

// The dominant speaker and Last-N. Bridges pick, per meeting, the dominant speaker from
// the audio levels publishers send (RFC 6464) and the few sources whose video they
// forward (Last-N); signaling passes that choice to every participant as KindSpeaker, so
// pages can mark who speaks and which sites are in the grid. A participant asks for a
// site to be pinned with KindPin: the chair's pin holds for the whole meeting (the site
// is always forwarded, and first on every link's bandwidth); anyone else's pin gives the
// site first call on the bandwidth of the asker's own link.

// Endpoint protocol kinds.
const (
	KindSpeaker Kind = "speaker" // server → client: the dominant speaker and Last-N changed
	KindPin     Kind = "pin"     // client → server: pin or unpin a site
)

// Speaker is the meeting's dominant speaker and Last-N set, as the bridges chose them.
type Speaker struct {
	// Dominant is the participant whose voice leads now; empty before anyone has spoken.
	Dominant string `json:"dominant,omitempty"`
	// Site is Dominant's site.
	Site string `json:"site,omitempty"`
	// LastN lists the participants whose camera is forwarded now (sorted): the grid. A
	// participant not in it is held back by the bridge; its tile shows no picture.
	LastN []string `json:"last_n"`
	// Pinned lists the sites the chair pinned for everyone (sorted); omitted when none.
	Pinned []string `json:"pinned,omitempty"`
	// Mine lists the sites this participant pinned for itself (sorted); omitted when none.
	Mine []string `json:"mine,omitempty"`
}

// Pin asks for a site to be pinned (On) or unpinned.
type Pin struct {
	Site string `json:"site"`
	On   bool   `json:"on"`
}

// Validate checks a pin request.
func (p *Pin) Validate() error {
	if p.Site == "" || len(p.Site) > maxTrackIDBytes {
		return errField
	}
	return nil
}

// StreamLayer is the simulcast layer at which one video stream is forwarded on a link
// (an endpoint's, or a relay link), as the link's allocator chose it.
type StreamLayer struct {
	Key ids.StreamKey `json:"key"`
	// Layer is the layer sent now (0 low, 1 middle, 2 top); Target the one the allocator
	// moves to (they differ until the target's next keyframe).
	Layer  int `json:"layer"`
	Target int `json:"target"`
	// Paused: Last-N holds the stream back now (nothing is sent).
	Paused bool `json:"paused,omitempty"`
}

// Bridge control kinds.
const (
	// KindBridgeSpeaker (bridge → signaling) reports a meeting's selection on the bridge.
	KindBridgeSpeaker Kind = "speaker_selection"
	// KindBridgePin (signaling → bridge) pins or unpins a participant's sources.
	KindBridgePin Kind = "pin_source"
)

// BridgeSpeaker is one meeting's selection on one bridge: its dominant speaker and the
// participants whose camera it forwards.
type BridgeSpeaker struct {
	Meeting  ids.MeetingID       `json:"meeting"`
	Dominant ids.ParticipantID   `json:"dominant,omitempty"`
	LastN    []ids.ParticipantID `json:"last_n,omitempty"`
}

// BridgePin pins (On) or unpins a participant's camera and microphone in a meeting on a
// bridge (bridge.Agent.Pin); with Peer set, only on that subscriber's link
// (bridge.Agent.PinFor): first call on its bandwidth, no change to Last-N.
type BridgePin struct {
	Meeting     ids.MeetingID     `json:"meeting"`
	Participant ids.ParticipantID `json:"participant"`
	Peer        ids.PeerID        `json:"peer,omitzero"`
	On          bool              `json:"on"`
}
