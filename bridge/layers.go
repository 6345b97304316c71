package bridge

import (
	"slices"
	"strings"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/sfu"
)

// layersByPeer lists, per peer, the simulcast streams forwarded to it with their layers,
// in one pass over the subscriptions (the heartbeat reads every peer's).
func (a *Agent) layersByPeer() map[ids.PeerID][]protocol.StreamLayer {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[ids.PeerID][]protocol.StreamLayer{}
	for sk, sub := range a.subs {
		d := sub.down
		if d == nil || !d.Simulcast() {
			continue
		}
		cur, target := d.Layer()
		out[sk.peer] = append(out[sk.peer], protocol.StreamLayer{Key: sk.key, Layer: cur, Target: target, Paused: d.Held()})
	}
	for id, ap := range a.peers {
		if ap.slots != nil {
			out[id] = append(out[id], slotLayers(ap)...)
		}
	}
	for _, ls := range out {
		slices.SortFunc(ls, func(x, y protocol.StreamLayer) int { return strings.Compare(x.Key.String(), y.Key.String()) })
	}
	return out
}

// estimate is a peer's downlink bandwidth estimate, 0 when it has none.
func estimate(p *sfu.Peer) float64 {
	if est, ok := p.Estimate(); ok {
		return est
	}
	return 0
}
