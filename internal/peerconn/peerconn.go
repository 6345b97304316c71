// Package peerconn makes pion peer connections whose Close always stops their ICE agent.
//
// pion (webrtc v4.2) makes a connection's ICE agent lazily, on the first CreateOffer,
// CreateAnswer or SetLocalDescription. A Close that runs before the agent exists finds
// nothing to stop and leaves the gatherer in its "new" state; a CreateOffer that passed its
// own closed check a moment before then makes the agent, which nothing will ever close: its
// task loop goroutine (and its candidates) outlive the connection. A bridge closes
// subscriber connections while their first offer is being made whenever an endpoint leaves
// during its join, so in a long meeting these add up; goleak caught two in signaling's
// tests (CI, 4 December 2026). New makes the agent before the connection is handed to
// anyone, so every later Close finds it.
package peerconn

import (
	"fmt"

	"github.com/pion/webrtc/v4"
)

// New is api.NewPeerConnection(conf) with the connection's ICE agent made at once.
func New(api *webrtc.API, conf webrtc.Configuration) (*webrtc.PeerConnection, error) {
	pc, err := api.NewPeerConnection(conf)
	if err != nil {
		return nil, err
	}
	// GetLocalParameters makes the agent (no gathering, no candidates yet): the same call
	// CreateOffer makes first.
	if _, err := pc.SCTP().Transport().ICETransport().GetLocalParameters(); err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("make ICE agent: %w", err)
	}
	return pc, nil
}
