package protocol

import (
	"fmt"

	"github.com/cau-project/cau/ids"
)

// What a page shows and what a publisher sends (issue 10). A page tells the server how
// large it shows each remote video (KindView): the bridge then forwards a layer no larger
// than the tile needs, and nothing for a tile that is not shown. Each bridge adds up what
// its subscribers and relay links need of each simulcast source; a layer nobody needs for
// a few seconds is paused at its publisher (KindPublishLayers, "dynacast"), and resumed
// as soon as someone needs it again.

// Endpoint protocol kinds.
const (
	// KindView (client → server): the size of each remote video tile the page shows.
	KindView Kind = "view"
	// KindPublishLayers (server → client): the simulcast layers of a published source
	// that someone needs now; the page sends only those.
	KindPublishLayers Kind = "publish_layers"
)

// Limits of a view message.
const (
	// MaxViewTiles bounds the tiles one view message lists (a page shows at most that
	// many videos; the rest take the default).
	MaxViewTiles = 512
	// MaxTileHeight bounds a tile's height in device pixels (an 8K screen's height, twice).
	MaxTileHeight = 8640
)

// View is the size of each remote video the page shows now. It replaces the previous
// view: a stream it does not name is forwarded as if no view had been sent (the layer the
// link fits).
type View struct {
	Tiles []Tile `json:"tiles"`
}

// Tile is one remote video on the page.
type Tile struct {
	Participant string `json:"participant"`
	Source      Source `json:"source"` // camera or screen
	// Height is the tile's height on the screen in device pixels (CSS pixels ×
	// devicePixelRatio); 0: not shown (hidden, scrolled away, the page in the background).
	Height int `json:"height"`
}

// Validate checks a view.
func (v *View) Validate() error {
	if len(v.Tiles) > MaxViewTiles {
		return fmt.Errorf("%w: more than %d tiles", errField, MaxViewTiles)
	}
	seen := make(map[Tile]bool, len(v.Tiles))
	for _, t := range v.Tiles {
		if t.Participant == "" || len(t.Participant) > maxTrackIDBytes {
			return fmt.Errorf("%w: tile participant must be 1..%d bytes", errField, maxTrackIDBytes)
		}
		if t.Source != SourceCamera && t.Source != SourceScreen {
			return fmt.Errorf("%w: tile source must be %q or %q", errField, SourceCamera, SourceScreen)
		}
		if t.Height < 0 || t.Height > MaxTileHeight {
			return fmt.Errorf("%w: tile height must be 0..%d", errField, MaxTileHeight)
		}
		k := Tile{Participant: t.Participant, Source: t.Source}
		if seen[k] {
			return fmt.Errorf("%w: tile %s.%s listed twice", errField, t.Participant, t.Source)
		}
		seen[k] = true
	}
	return nil
}

// LayerForHeight is the highest simulcast layer a tile of height device pixels needs: -1
// for a tile not shown, 0 (180p) up to 240, 1 (360p) up to 480, else 2 (720p). A layer a
// little smaller than the tile is scaled up without visible loss; the next one up costs
// about three times the rate.
func LayerForHeight(height int) int {
	switch {
	case height <= 0:
		return -1
	case height <= 240:
		return 0
	case height <= 480:
		return 1
	}
	return 2
}

// PublishLayers names, per published video source, the simulcast layers someone needs
// now. A page sends those and pauses the others (RTCRtpSender.setParameters,
// encodings[i].active); a source it does not name sends all its layers.
type PublishLayers struct {
	Sources []SourceLayers `json:"sources"`
}

// SourceLayers is one published source's needed layers.
type SourceLayers struct {
	Source Source `json:"source"`
	// Active lists the RIDs of the layers to send, lowest first; empty: none (nobody
	// watches the source).
	Active []string `json:"active"`
}

// Bridge control kinds.
const (
	// KindBridgeView (signaling → bridge) caps the layers forwarded to a peer per stream.
	KindBridgeView Kind = "view_streams"
	// KindBridgePublishLayers (bridge → signaling) reports the layers of a peer's source
	// someone needs.
	KindBridgePublishLayers Kind = "publish_layers"
)

// BridgeView is a peer's view on a bridge (bridge.Agent.SetView): per stream, the highest
// layer it takes (-1: none). It replaces the peer's previous view; a stream not named
// takes what its link fits.
type BridgeView struct {
	Peer    ids.PeerID   `json:"peer"`
	Streams []StreamView `json:"streams,omitempty"`
}

// PeerID is the peer the command is about.
func (m BridgeView) PeerID() ids.PeerID { return m.Peer }

// StreamView is the highest layer one stream is forwarded at (-1: none).
type StreamView struct {
	Key      ids.StreamKey `json:"key"`
	MaxLayer int           `json:"max_layer"`
}

// BridgePublishLayers says which layers of a source published by a peer anyone on the
// bridge (its endpoints, its relay links) needs now.
type BridgePublishLayers struct {
	Peer   ids.PeerID    `json:"peer"`
	Key    ids.StreamKey `json:"key"`
	Active []string      `json:"active"`
}
