// Package attachrtc is the WebRTC side of an endpoint attached to signaling in process
// (signaling.Attach): the gateways (WHEP viewers, SIP calls) hold the two pion
// connections a browser holds with its bridge, and this package handles the signaling
// messages about them the way a browser's page does. signaling itself never touches
// pion (internal/layering).
package attachrtc

import (
	"fmt"

	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/signaling"
)

// HandleMedia handles env if it is about the endpoint's connections: the bridge's offer
// for the subscriber connection (answered by sub) or a trickled candidate (added to sub
// or, when pub is not nil, to pub). It reports whether env was such a message, and the
// error answering found.
func HandleMedia(env protocol.Envelope, ep *signaling.Attached, sub, pub *webrtc.PeerConnection) (bool, error) {
	switch env.Kind {
	case protocol.KindOffer:
		o, err := protocol.DecodeBridgeOffer(env)
		if err != nil {
			return true, err
		}
		return true, answer(ep, sub, o.SDP)
	case protocol.KindCandidate:
		var c protocol.Candidate
		if protocol.DecodeData(env, &c) != nil || c.Candidate.Candidate == "" {
			return true, nil
		}
		pc := sub
		if c.Target != protocol.TargetSubscriber {
			pc = pub
		}
		if pc != nil {
			_ = pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: c.Candidate.Candidate,
				SDPMid: c.Candidate.SDPMid, SDPMLineIndex: c.Candidate.SDPMLineIndex})
		}
		return true, nil
	}
	return false, nil
}

// answer answers the bridge's subscriber offer with sub and sends the answer.
func answer(ep *signaling.Attached, sub *webrtc.PeerConnection, sdp string) error {
	if err := sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return fmt.Errorf("bridge offer: %w", err)
	}
	ans, err := sub.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	if err := sub.SetLocalDescription(ans); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	return ep.Send(protocol.KindAnswer, protocol.Answer{SDP: ans.SDP})
}
