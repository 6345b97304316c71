package client

import (
	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/protocol"
)

func (c *Client) readLoop(conn *websocket.Conn) {
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			c.socketEnded(conn, err)
			return
		}
		env, err := protocol.Decode(data)
		if err != nil {
			c.log.Warn("bad message from server", "err", err)
			continue
		}
		c.dispatch(env)
	}
}

func (c *Client) dispatch(env protocol.Envelope) {
	if env.Kind == protocol.KindJoined {
		// Applied here, on the read goroutine, so the connections have the TURN servers
		// before the subscriber offer that may follow joined is handled, and later
		// participant and floor changes apply on top of joined's state.
		var j protocol.Joined
		if protocol.DecodeData(env, &j) == nil {
			c.applyJoined(j)
			c.useICEServers(j.ICEServers)
			c.joinedAgain(j)
		}
	}
	if c.replies.Deliver(env) {
		return
	}
	switch env.Kind {
	case protocol.KindOffer:
		o, err := protocol.DecodeBridgeOffer(env)
		if err != nil {
			c.log.Warn("bridge offer refused", "err", err)
			break
		}
		mark(&c.timeline.offer)
		c.mu.Lock()
		c.offers++
		c.mu.Unlock()
		go c.answer(o.SDP)
	case protocol.KindFloor:
		var f protocol.FloorState
		if protocol.DecodeData(env, &f) == nil {
			c.setFloor(&f)
		}
	case protocol.KindRecording:
		c.setRecording(env)
	case protocol.KindSpeaker:
		c.setSpeaker(env)
	case protocol.KindPublishLayers:
		c.setPublishLayers(env)
	case protocol.KindSlots:
		c.setSlots(env)
	case protocol.KindReconnect:
		var r protocol.Reconnect
		_ = protocol.DecodeData(env, &r)
		if r.Resume != "" {
			c.mu.Lock()
			c.resumeToken = r.Resume
			c.mu.Unlock()
		}
		c.reconnect(r.Reason)
	case protocol.KindCandidate:
		var cand protocol.Candidate
		if protocol.DecodeData(env, &cand) == nil {
			pc, sub := c.peers()
			if cand.Target == protocol.TargetSubscriber {
				pc = sub
			}
			c.addCandidate(pc, webrtc.ICECandidateInit{Candidate: cand.Candidate.Candidate,
				SDPMid: cand.Candidate.SDPMid, SDPMLineIndex: cand.Candidate.SDPMLineIndex})
		}
	case protocol.KindRoster:
		var r protocol.Roster
		if protocol.DecodeData(env, &r) == nil {
			c.mu.Lock()
			for _, p := range r.Participants {
				c.participants[p.ID] = p
			}
			for _, id := range r.Left {
				delete(c.participants, id)
			}
			c.mu.Unlock()
		}
	case protocol.KindError:
		var e protocol.Error
		_ = protocol.DecodeData(env, &e)
		c.mu.Lock()
		c.errs = append(c.errs, e)
		c.mu.Unlock()
	}
}

// answer handles the server's subscriber offer. Offers arrive one at a time (the server
// waits for each answer), except that a bridge whose answer is late sends its offer
// again: answerMu keeps the two answers apart.
func (c *Client) answer(sdp string) {
	c.answerMu.Lock()
	defer c.answerMu.Unlock()
	_, sub := c.peers()
	if err := sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		c.log.Warn("subscriber offer", "err", err)
		return
	}
	c.flushCandidates(sub)
	ans, err := sub.CreateAnswer(nil)
	if err == nil {
		mark(&c.timeline.answer) // before SetLocalDescription: that starts ICE
		err = sub.SetLocalDescription(ans)
	}
	if err != nil {
		c.log.Warn("subscriber answer", "err", err)
		return
	}
	_ = c.send(protocol.KindAnswer, "", protocol.Answer{SDP: ans.SDP})
}
