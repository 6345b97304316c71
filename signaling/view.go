package signaling

import (
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
)

// What a page shows and what a publisher sends (protocol/view.go). A view message turns
// each tile's height into the highest layer the tile needs (protocol.LayerForHeight) and
// goes to the session's bridge (Bridge.View); the bridge's dynacast reports about the
// endpoint's own sources come back as publish_layers.

// handleView applies a page's view on its bridge, replacing the previous one.
func (s *session) handleView(_ protocol.Envelope, v protocol.View) error {
	cmd := protocol.BridgeView{Streams: make([]protocol.StreamView, len(v.Tiles))}
	for i, t := range v.Tiles {
		cmd.Streams[i] = protocol.StreamView{
			Key:      ids.StreamKey{Participant: ids.ParticipantID(t.Participant), Source: t.Source},
			MaxLayer: protocol.LayerForHeight(t.Height),
		}
	}
	m := s.meeting
	m.mu.Lock()
	defer m.mu.Unlock()
	s.view = &cmd
	s.pushView()
	return nil
}

// pushView sends the session's view, if it has one, to its bridge for its peer, on the
// meeting's op queue (after the peer's creation when it was just moved). Caller holds
// meeting.mu.
func (s *session) pushView() {
	if s.view == nil || s.bridge == nil {
		return
	}
	b, cmd := s.bridge, *s.view
	cmd.Peer = s.peerID
	s.meeting.ops.push(func() {
		if err := b.View(cmd); err != nil {
			s.log.Debug("view", "bridge", b.ID(), "err", err)
		}
	})
}

// publishLayers tells the endpoint which layers of its source key anyone needs now (a
// bridge's dynacast report).
func (s *session) publishLayers(key ids.StreamKey, active []string) {
	if active == nil {
		active = []string{}
	}
	s.reply(protocol.KindPublishLayers, "", protocol.PublishLayers{
		Sources: []protocol.SourceLayers{{Source: key.Source, Active: active}},
	})
}

// View implements Bridge.
func (l *LocalBridge) View(v protocol.BridgeView) error {
	l.agent.SetView(v)
	return nil
}
