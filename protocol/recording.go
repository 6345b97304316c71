package protocol

import "time"

// KindRecording (server → client) carries the meeting's recording state: sent after
// joined when the meeting is being recorded, and to everyone when recording starts or
// stops. Every page shows an indicator while Active ("Đang ghi hình").
const KindRecording Kind = "recording"

// Recording is the payload of a recording message.
type Recording struct {
	Active bool `json:"active"`
	// Since is when the recording started (Active only).
	Since time.Time `json:"since,omitzero"`
	// By names who started it (Active) or stopped it.
	By string `json:"by,omitempty"`
}
