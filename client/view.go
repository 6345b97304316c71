package client

import (
	"fmt"
	"maps"
	"slices"

	"github.com/cau-project/cau/protocol"
)

// View tells the server how large this client shows each remote video (see
// protocol.View): a small tile gets the low layer, a tile of height 0 nothing. It
// replaces the previous view.
func (c *Client) View(tiles []protocol.Tile) error {
	if err := c.send(protocol.KindView, "", protocol.View{Tiles: tiles}); err != nil {
		return fmt.Errorf("view: %w", err)
	}
	return nil
}

// PublishLayers is, per published source, the layers (RIDs) the server last said anyone
// needs (publish_layers), and how many such messages came; a source never named sends
// every layer. A simulcast Synth published with PublishWith follows them, as the join
// page does: it stops sending a layer nobody needs.
func (c *Client) PublishLayers() (map[protocol.Source][]string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.pubLayers), c.pubLayersN
}

func (c *Client) setPublishLayers(env protocol.Envelope) {
	var m protocol.PublishLayers
	if protocol.DecodeData(env, &m) != nil {
		return
	}
	c.mu.Lock()
	if c.pubLayers == nil {
		c.pubLayers = map[protocol.Source][]string{}
	}
	for _, s := range m.Sources {
		c.pubLayers[s.Source] = s.Active
	}
	c.pubLayersN++
	var synth *Synth
	if c.publication != nil {
		synth = c.publication.synth
	}
	active, ok := c.pubLayers[protocol.SourceCamera]
	c.mu.Unlock()
	if synth != nil && ok {
		synth.setActiveLayers(active)
	}
}

// setActiveLayers sends only the layers whose RIDs are named; a layer sent again starts
// with a keyframe, as a browser's encoder does.
func (s *Synth) setActiveLayers(rids []string) {
	for _, l := range s.layers {
		paused := !slices.Contains(rids, l.rid)
		if s := l.paused.Swap(paused); s && !paused {
			l.keyframeWanted.Store(true)
		}
	}
}
