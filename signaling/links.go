package signaling

import (
	"sort"
	"time"

	"github.com/cau-project/cau/protocol"
)

// EndpointLink is one endpoint's link with its bridge: what monitoring grades and shows.
type EndpointLink struct {
	Meeting     string
	Participant protocol.Participant
	Bridge      string
	Joined      time.Time
	// Up is what the endpoint sends, as its bridge receives it; Down what the bridge sends
	// it, as the endpoint's receiver reports describe it. Zero values until media flows.
	Up, Down protocol.LinkFigures
	// Measured is false when the bridge has not reported this endpoint yet.
	Measured bool
	// EstimateBps is the bridge's bandwidth estimate of the endpoint's downlink (0: none
	// yet), Layers the layer each simulcast stream reaches it at.
	EstimateBps float64
	Layers      []protocol.StreamLayer
	// SIP describes a room's SIP call (the gateway's endpoint); nil for others.
	SIP *protocol.SIPCall
}

// Links returns the link figures of every endpoint in every live meeting, ordered by
// meeting and participant id. Remote bridges' figures are at most a heartbeat (1 s) old.
func (s *Server) Links() []EndpointLink {
	stats := map[ownerKey]protocol.PeerStat{}
	s.focus.mu.Lock()
	for id, e := range s.focus.bridges {
		if e.up && e.b != Bridge(s.local) {
			for _, ps := range e.load.Endpoints {
				stats[ownerKey{id, ps.Peer}] = ps
			}
		}
	}
	s.focus.mu.Unlock()
	if s.local != nil {
		for _, ps := range s.local.agent.PeerStats() {
			stats[ownerKey{s.local.ID(), ps.Peer}] = ps
		}
	}

	s.mu.Lock()
	ms := make([]*meeting, 0, len(s.meetings))
	for _, m := range s.meetings {
		ms = append(ms, m)
	}
	s.mu.Unlock()
	var out []EndpointLink
	for _, m := range ms {
		m.mu.Lock()
		for _, p := range m.participants {
			l := EndpointLink{Meeting: string(m.id), Participant: p.participant(), Joined: p.joined}
			if p.bridge != nil {
				l.Bridge = string(p.bridge.ID())
				if ps, ok := stats[ownerKey{p.bridge.ID(), p.peerID}]; ok {
					l.Up, l.Down, l.Measured = ps.Up, ps.Down, true
					l.EstimateBps, l.Layers = ps.EstimateBps, ps.Layers
				}
			}
			if p.linkFigures != nil {
				// A gateway's endpoint: its own link is the room's, not the gateway's
				// connection to the bridge.
				gl, ok := p.linkFigures()
				l.Up, l.Down, l.Measured, l.SIP = gl.Up, gl.Down, ok, gl.SIP
			}
			out = append(out, l)
		}
		m.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Meeting != out[j].Meeting {
			return out[i].Meeting < out[j].Meeting
		}
		return out[i].Participant.ID < out[j].Participant.ID
	})
	return out
}
