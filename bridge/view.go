package bridge

import (
	"maps"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/sfu"
)

// What each subscriber shows, and what each publisher need send (issue 10). A page's
// view (protocol.View, turned into layers by signaling) caps, per stream, the layer its
// peer's link takes (sfu.DownTrack.SetMaxLayer): a thumbnail takes the low layer, a hidden
// tile nothing, and neither counts toward what the bridges before ask for. The sfu adds
// up those caps per published simulcast source (dynacast) and reports the layers anyone
// needs; the agent passes that on as Events.PublishLayers for signaling to tell the page.

// topLayer is the cap of a stream no view names: whatever the link fits.
const topLayer = 2

// SetView replaces peer's view: the highest layer of each named stream it takes (-1:
// none); a stream not named takes topLayer. It holds for the streams peer subscribes to
// later, until replaced or the peer closes.
func (a *Agent) SetView(v protocol.BridgeView) {
	caps := make(map[ids.StreamKey]int, len(v.Streams))
	for _, s := range v.Streams {
		caps[s.Key] = min(max(s.MaxLayer, -1), topLayer)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(caps) == 0 {
		delete(a.views, v.Peer)
	} else {
		a.views[v.Peer] = caps
	}
	for sk, sub := range a.subs {
		if sk.peer == v.Peer {
			sub.maxLayer = a.viewCap(sk)
			if sub.down != nil {
				sub.down.SetMaxLayer(sub.maxLayer)
			}
		}
	}
	if ap := a.peers[v.Peer]; ap != nil && ap.slots != nil {
		// A peer in slots: its tiles cap the slots that carry their participants.
		ap.slots.SetCaps(slotCaps(a.views[v.Peer], a.layerCaps, v.Peer))
	}
}

// viewCap is the layer cap of a subscription by its peer's view. Caller holds a.mu.
func (a *Agent) viewCap(sk subKey) int {
	c, ok := a.views[sk.peer][sk.key]
	if !ok {
		c = topLayer
	}
	if p, ok := a.layerCaps[sk.peer]; ok { // the peer's own cap (CapLayers: a room codec)
		c = min(c, p)
	}
	return c
}

// publishLayers passes the sfu's dynacast report for one of ap's sources on as
// Events.PublishLayers. On the peer's dynacast goroutine.
func (a *Agent) publishLayers(ap *agentPeer, up *sfu.UpTrack, active []string) {
	if a.ev.PublishLayers == nil {
		return
	}
	a.mu.Lock()
	key, ok := a.keyOf(ap, up)
	a.mu.Unlock()
	if ok {
		a.ev.PublishLayers(ap.id, key, active)
	}
}

// ViewOf is peer's view: the layer cap of each stream it named (a copy; nil: none).
func (a *Agent) ViewOf(peer ids.PeerID) map[ids.StreamKey]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.views[peer])
}
