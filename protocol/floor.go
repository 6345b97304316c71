package protocol

import "time"

// Floor control: who may send audio and video now. The server keeps the floor of each
// meeting and sends it to every participant as KindFloor whenever it changes (and in
// Joined). Clients ask for changes with KindFloorAction.

// KindFloorAction (client → server) asks for a floor change; KindFloor (server → client)
// carries the floor state.
const (
	KindFloorAction Kind = "floor_action"
	KindFloor       Kind = "floor"
)

// Floor actions. request, withdraw and yield are a site's; the others are the chair's.
const (
	FloorRequest  = "request"  // raise the hand (training mode)
	FloorWithdraw = "withdraw" // lower it
	FloorYield    = "yield"    // give the floor back
	FloorGrant    = "grant"    // chair: give Site the floor (Mic, Camera in directed mode)
	FloorDeny     = "deny"     // chair: refuse Site's request
	FloorRevoke   = "revoke"   // chair: take the floor from Site
	FloorMuteAll  = "mute_all" // chair: every site mutes its microphone
	FloorSetMode  = "set_mode" // chair: switch to Mode
	FloorEnd      = "end"      // chair: end the meeting for everyone
)

// FloorAction is a request to change the floor.
type FloorAction struct {
	Action string `json:"action"`
	Site   string `json:"site,omitempty"`
	Mic    bool   `json:"mic,omitempty"`
	Camera bool   `json:"camera,omitempty"`
	Mode   string `json:"mode,omitempty"` // discussion, training or directed
}

// Validate checks a floor action.
func (a *FloorAction) Validate() error {
	switch a.Action {
	case FloorRequest, FloorWithdraw, FloorYield, FloorMuteAll, FloorEnd:
	case FloorGrant, FloorDeny, FloorRevoke:
		if a.Site == "" || len(a.Site) > maxTrackIDBytes {
			return errField
		}
	case FloorSetMode:
		if a.Mode != "discussion" && a.Mode != "training" && a.Mode != "directed" {
			return errField
		}
	default:
		return errField
	}
	return nil
}

// FloorGrantState is a site holding the floor.
type FloorGrantState struct {
	Site   string    `json:"site"`
	Mic    bool      `json:"mic"`
	Camera bool      `json:"camera"`
	Since  time.Time `json:"since"`
}

// FloorRequestState is a site waiting for the floor.
type FloorRequestState struct {
	Site string    `json:"site"`
	At   time.Time `json:"at"`
}

// FloorState is the floor of a meeting.
type FloorState struct {
	Mode      string              `json:"mode"`
	ChairSite string              `json:"chair_site,omitempty"`
	Speakers  []FloorGrantState   `json:"speakers,omitempty"`
	Requests  []FloorRequestState `json:"requests,omitempty"`
	// Previous is the site that spoke before the current speakers: layouts keep it in the
	// second window.
	Previous string `json:"previous,omitempty"`
	// MuteEpoch changes on every "mute all": clients mute their microphone then.
	MuteEpoch uint64 `json:"mute_epoch,omitempty"`
	Ended     bool   `json:"ended,omitempty"`
	Version   uint64 `json:"version"`
}
