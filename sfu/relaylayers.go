package sfu

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// Several layers per relay link (issue 10). A relay link's subscription to a simulcast
// source is one track per layer (layer tracks, ids "<track id>~L<layer>"), each fed by
// that layer alone and stopped while it is not carried. The bridge beyond reports the set
// of layers its subtree needs (CAUN, need.go): each subscriber's chosen layer, plus the
// layer it still receives while it waits for the chosen one's keyframe, and what its own
// relay links carry. The link's allocator carries each needed layer once, lowest first:
// it weighs the source as the cumulative rate of the needed layers up to a top layer, so
// that when the estimate cannot carry them all the higher ones go first and the subtree's
// weak sites keep the low layer. The bridge beyond files the layer tracks as the layers
// of one simulcast source (joinSimulcast), so it serves each of its subscribers the layer
// it fits with the same keyframe-aligned switching and continuous rewriting as for a
// local simulcast publisher. A bridge that says no set (an older one: a single layer)
// gets that layer alone, and one that says nothing gets the layer the link fits.

// layerSuffix marks a relay link's layer track id.
const layerSuffix = "~L"

// layerTrackID is layer's track id on a relay link for the source sent as id.
func layerTrackID(id string, layer int) string {
	return id + layerSuffix + string(rune('0'+layer))
}

// parseLayerTrackID splits a layer track's id into the source's id and the layer; ok is
// false for any other id (a track that is not a layer track).
func parseLayerTrackID(id string) (base string, layer int8, ok bool) {
	i := strings.LastIndex(id, layerSuffix)
	if i <= 0 || len(id) != i+len(layerSuffix)+1 {
		return id, 0, false
	}
	c := id[len(id)-1]
	if c < '0' || c >= '0'+maxLayers {
		return id, 0, false
	}
	return id[:i], int8(c - '0'), true
}

// relayLayers is a relay link's subscription to a simulcast source as layer tracks.
// The subscription's handle (the DownTrack Subscribe returns) is tracks[0], the others
// hang from it (DownTrack.handle).
type relayLayers struct {
	tracks  [maxLayers]*DownTrack        // set at Subscribe, read-only after
	senders [maxLayers]*webrtc.RTPSender // of tracks[1:]; the handle's is the peer's
	// top is the highest layer carried (-1: none), carried the layers carried now
	// (bit i: layer i). Written by the allocator, read anywhere.
	top     atomic.Int32
	carried atomic.Uint32
	// Allocator goroutine only: want is the needed layers the allocator weighed this
	// tick (0: the need is not known, the top alone is carried); raw the source's layer
	// rates before the cap; ceil the highest layer the link carries of the source while
	// its estimate cannot carry what is needed (maxLayers-1 otherwise), told to the bridge
	// beyond (CAUR) so that its subscribers do not wait for a layer that will not come;
	// ceilAt when it last fell.
	want   uint8
	raw    [maxLayers]float64
	ceil   int8
	ceilAt time.Time
}

// ceilRetry is how long a lowered ceiling holds unless the spare estimate lifts it.
const ceilRetry = 10 * time.Second

// newRelayLayers turns d, a relay link's subscription to a simulcast source, into the
// handle of its layer tracks: d carries layer 0, new DownTracks the others.
func newRelayLayers(d *DownTrack) {
	r := &relayLayers{}
	base := d.id
	for i := range r.tracks {
		t := d
		if i > 0 {
			t = newDownTrack(d.up, d.sub, "", d.streamID)
			t.handle = d
		}
		t.id = layerTrackID(base, i)
		t.sim.fixed = int8(i)
		r.tracks[i] = t
	}
	r.carried.Store(1) // Subscribe starts it at the low layer
	r.ceil = maxLayers - 1
	d.relay = r
}

// owner is the subscription a DownTrack belongs to: its handle for a layer track.
func (d *DownTrack) owner() *DownTrack {
	if d.handle != nil {
		return d.handle
	}
	return d
}

// needMaskNow is the set of layers the bridge beyond this relay link needs of the
// stream (bit i: layer i) and whether it said lately. A bridge that reports only its
// highest layer needs that one.
func (d *DownTrack) needMaskNow(now time.Time) (uint8, bool) {
	n := d.needNow(now)
	if n == needUnknown {
		return 0, false
	}
	if n < 0 {
		return 0, true
	}
	if m := uint8(d.needMask.Load()); m != 0 {
		return m, true
	}
	return 1 << n, true
}

// weigh makes a layered relay subscription's rates (already capped at the highest layer
// needed, capStream) the cost of what the link carries for each choice of a top layer t:
// t itself and every needed layer below it. So the allocator's choice of a top is the set
// carried: when the estimate cannot carry every needed layer the higher ones go first,
// and below the lowest needed a lower layer stands in. It records the needed layers
// (r.want). Allocator goroutine.
func (r *relayLayers) weigh(d *DownTrack, rates []float64, now time.Time) {
	mask, known := d.needMaskNow(now)
	r.want = 0
	if !known {
		return
	}
	below := 0.0 // the needed layers under the one weighed
	for i, rt := range rates {
		if rt == 0 {
			continue
		}
		rates[i] = rt + below
		if mask&(1<<i) != 0 {
			r.want |= 1 << i
			below += rt
		}
	}
}

// limit updates the link's ceiling for the source after the allocator chose top (-1:
// stopped) with spare bit/s of its estimate unused (after the raise headroom): down to
// top when congestion moved the link down below the need; up one layer when the spare
// fits the next layer in the top's place, or back to the top layer ceilRetry after it
// fell (the estimate may not grow on what the link carries alone: the bridge beyond then
// asks again, and the allocator probes before it raises). It returns the spare left.
// Allocator goroutine.
func (r *relayLayers) limit(top int, down bool, spare float64, now time.Time) float64 {
	if top < 0 {
		return spare
	}
	if needTop := int(highestLayer(r.want)); needTop > top {
		if down {
			r.ceil, r.ceilAt = int8(top), now
		}
		return spare
	}
	if r.ceil < maxLayers-1 {
		// The next layer up would take the place of the top (the sites that asked for
		// the top move up), so it fits if the spare makes up the difference.
		if diff := r.raw[r.ceil+1] - r.raw[top]; spare >= diff {
			r.ceil++
			spare -= max(diff, 0)
		} else if now.Sub(r.ceilAt) >= ceilRetry {
			r.ceil = maxLayers - 1
		}
	}
	return spare
}

// apply carries the needed layers up to top (the top alone when the need is not known)
// and stops the others. Idempotent: the allocator applies it every tick. Allocator
// goroutine.
func (r *relayLayers) apply(top int) {
	var carry uint8
	if top >= 0 {
		carry = 1 << top
		if r.want != 0 {
			carry |= r.want & (2<<top - 1)
		}
	}
	r.top.Store(int32(top))
	r.carried.Store(uint32(carry))
	for i, t := range r.tracks {
		s := t.sim
		if carry&(1<<i) != 0 {
			if s.off.Load() || s.target.Load() != int32(i) {
				t.SetLayer(i) // resumes at the layer's next keyframe, asked for now
			}
		} else if !s.off.Load() {
			t.setOff()
		}
	}
}

// stop carries nothing; it reports whether something was carried.
func (r *relayLayers) stop() bool {
	was := r.carried.Swap(0) != 0 || r.top.Load() >= 0
	r.top.Store(-1)
	for _, t := range r.tracks {
		if !t.sim.off.Load() {
			t.setOff()
		}
	}
	return was
}

// RelayLayers lists the layers a relay link's subscription carries now, lowest first
// (nil for any other subscription, or none carried).
func (d *DownTrack) RelayLayers() []int {
	if d.relay == nil {
		return nil
	}
	var out []int
	c := d.relay.carried.Load()
	for i := range maxLayers {
		if c&(1<<i) != 0 {
			out = append(out, i)
		}
	}
	return out
}

// relayLayer is Layer for a layer tracks' handle: the highest layer forwarded now, and
// the highest carried.
func (r *relayLayers) layer() (current, target int) {
	current = -1
	for i, t := range r.tracks {
		if !t.sim.off.Load() && t.sim.current.Load() == int32(i) {
			current = i
		}
	}
	return current, int(r.top.Load())
}

// sourceNeed is the set of layers anyone here needs of a relayed simulcast source (bit i:
// layer i), for the link it arrives on: each subscriber's chosen layer and, while it
// waits for that layer's keyframe, the one it still receives; what this bridge's own
// relay links carry of it; for a local tap (the recorder), the layer it taps and the
// top. Last-N's held-back subscriptions need nothing.
func (s *simulcast) sourceNeed() uint8 {
	var mask uint8
	for i := range s.layers {
		if up := s.layers[i].Load(); up != nil && len(*up.taps.Load()) > 0 {
			// The tap stays on the layer it was made on (the highest here then): that one
			// keeps coming, and the top too, as the recorder asks of a local source.
			mask |= 1<<i | 1<<(maxLayers-1)
		}
	}
	for _, d := range s.subscriptions() {
		if d.Paused() {
			continue
		}
		if d.relay != nil {
			mask |= uint8(d.relay.carried.Load())
			continue
		}
		w := d.wantLayer()
		if w < 0 {
			continue
		}
		mask |= 1 << w
		if cur := d.sim.current.Load(); cur >= 0 {
			mask |= 1 << cur // make before break: kept until the chosen layer takes over
		}
	}
	return mask
}

// relayedRates fills out with the rates of a relayed source's layers as the bridge
// before reported them (CAUR, on any of its layer tracks); ok is false when the source
// was not relayed or the report is stale.
func (s *simulcast) relayedRates(now time.Time, out []float64) bool {
	for i := range s.layers {
		if up := s.layers[i].Load(); up != nil && up.owner.params.Relay && up.layered(now, out) {
			for l := int(up.relayRates.ceil.Load()) + 1; l < len(out); l++ {
				out[l] = 0 // the link would not carry it now
			}
			return true
		}
	}
	return false
}

// subscriptions are the subscriptions to the source (the handles), whatever layer each
// forwards or none.
func (s *simulcast) subscriptions() []*DownTrack {
	if p := s.subs.Load(); p != nil {
		return *p
	}
	return nil
}

// addSub and removeSub keep the source's subscriptions (Subscribe, removeDownTrack).
func (s *simulcast) addSub(d *DownTrack) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	next := withAdded(s.subscriptions(), d)
	s.subs.Store(&next)
}

func (s *simulcast) removeSub(d *DownTrack) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	next := without(s.subscriptions(), d)
	s.subs.Store(&next)
}

// sourcePackets counts the packets received of the track's source: of all its layers
// for a simulcast one (a relayed source's first layer may not be the one carried now).
func (t *UpTrack) sourcePackets() uint64 {
	if t.sim == nil {
		return t.PacketsReceived()
	}
	var n uint64
	for i := range t.sim.layers {
		if up := t.sim.layers[i].Load(); up != nil {
			n += up.PacketsReceived()
		}
	}
	return n
}
