package sfu

import (
	"maps"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/sfu/bwe"
)

// Video slots under the link allocator (issue 10). A subscriber in slots receives each
// selected camera in a video slot; the slot takes one simulcast layer of its source, as a
// simulcast DownTrack does, and the subscriber link's allocator (allocator.go) chooses it
// from the link's estimate with the same rules: the floor holder, the chair and pinned
// sources first, then the speaker, then the thumbnails, each capped by the tile the page
// shows the source in (SlotSet.SetCaps); a hidden tile's slot forwards nothing. A layer
// switch inside a slot is a change of feeder (Point): the slot's rewriter starts the new
// layer at its keyframe, with the numbering continuous, as for a change of source.
// Audio slots, and video slots whose source is not simulcast, count as the link's other
// traffic.

// allocSub is what the allocator moves between layers: a simulcast subscription
// (DownTrack) or a video slot.
type allocSub interface {
	// chosen is the layer last chosen (-1: none yet, or stopped).
	chosen() int
	// choose moves to layer l at its next keyframe; stepDown does it with the layer
	// forwarded now stopped at once (the link overruns).
	choose(l int)
	stepDown(l int)
	// allocName names it in the logs; forwarded is the layer forwarded now for the
	// metrics (-1: none, or not counted here).
	allocName() string
	forwarded() int
}

func (d *DownTrack) allocName() string { return d.id }

func (d *DownTrack) forwarded() int {
	if d.sim == nil {
		return -1 // a relayed layer: the bridge before chose it
	}
	cur, _ := d.Layer()
	return cur
}

func (s *Slot) allocName() string { return s.id }

func (s *Slot) forwarded() int {
	s.mu.Lock()
	relayed := s.src != nil && s.src.sim == nil
	s.mu.Unlock()
	if relayed {
		return -1 // a relayed layer: the bridge before chose it
	}
	cur, _ := s.Layer()
	return cur
}

// chosen is the layer the slot takes of its layered source, -1 while it forwards
// nothing (no source, a hidden tile).
func (s *Slot) chosen() int {
	s.mu.Lock()
	none := s.src == nil || (s.cur == nil && s.next == nil)
	relayed := s.src != nil && s.src.sim == nil
	s.mu.Unlock()
	switch {
	case none:
		return -1
	case relayed:
		return int(s.want.Load())
	}
	return int(s.target.Load())
}

func (s *Slot) choose(l int)   { s.setLayer(l, false) }
func (s *Slot) stepDown(l int) { s.setLayer(l, true) }

// setLayer moves the slot to layer l of the source it forwards (nearest present), at the
// layer's keyframe; with cut, a step down stops the layer forwarded now at once. For a
// relayed layered source it records l as the feeders' want: the bridge before the relay
// link switches (need.go). Safe from any goroutine; the allocator calls it.
func (s *Slot) setLayer(l int, cut bool) {
	s.ctl.Lock()
	defer s.ctl.Unlock()
	s.mu.Lock()
	up, source := s.src, s.source
	if up != nil && up.sim == nil {
		s.want.Store(int32(l))
		for _, d := range []*DownTrack{s.cur, s.next} {
			if d != nil {
				d.want.Store(int32(l))
			}
		}
	}
	s.mu.Unlock()
	if up == nil || up.sim == nil {
		return
	}
	s.point(up, source, min(l, int(s.maxLayer.Load())), cut)
}

// Layer is the simulcast layer the slot forwards now (-1: none, or before the first
// keyframe) and the layer it switches to (its target; the same when none is pending).
func (s *Slot) Layer() (current, target int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	current, target = -1, -1
	if s.cur != nil && s.rw.started && !s.rw.resume {
		current = int(max(s.cur.up.layer, 0))
	}
	target = current
	if s.next != nil {
		target = int(max(s.next.up.layer, 0))
	}
	return current, target
}

// Simulcast reports whether the slot forwards a simulcast source now (its layer is this
// bridge's choice).
func (s *Slot) Simulcast() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.src != nil && s.src.sim != nil
}

// layerNow is the layer a source pointed at starts at: the slot's, the lowest before the
// allocator's first choice, within the tile's cap. Caller holds ctl.
func (s *Slot) layerNow() int {
	return min(max(int(s.target.Load()), 0), int(s.maxLayer.Load()))
}

// tileCaps are the caps of a slot set's sources (SetCaps).
type tileCaps struct {
	by     map[string]int
	others int
}

// capOf is the cap of source's tile (the top layer when no caps were set).
func (s *Slot) capOf(source string) int {
	if s.caps == nil {
		return maxLayers - 1
	}
	tc := s.caps.Load()
	if tc == nil {
		return maxLayers - 1
	}
	c, ok := tc.by[source]
	if !ok {
		c = tc.others
	}
	return min(max(c, -1), maxLayers-1)
}

// nearestLayer is layer l of src, or the nearest present below, else above; the
// primary if none is present.
func nearestLayer(src *simulcast, l int) *UpTrack {
	l = min(max(l, 0), maxLayers-1)
	for i := l; i >= 0; i-- {
		if up := src.layer(int8(i)); up != nil {
			return up
		}
	}
	for i := l + 1; i < maxLayers; i++ {
		if up := src.layer(int8(i)); up != nil {
			return up
		}
	}
	return src.primary
}

// SetCaps caps, per source, the layer a video slot takes of it: the size of the tile
// the page shows the source in (-1: hidden, the slot forwards nothing); a source not
// named takes others (the top layer: whatever the link fits). It replaces the previous caps and holds for the
// sources mapped later. A lowered cap or a hidden tile applies at once, a raised one at
// the allocator's next round. Safe from any goroutine.
func (set *SlotSet) SetCaps(caps map[string]int, others int) {
	set.caps.Store(&tileCaps{by: maps.Clone(caps), others: others})
	for _, s := range set.video {
		s.ctl.Lock()
		s.mu.Lock()
		up, source := s.src, s.source
		s.mu.Unlock()
		s.maxLayer.Store(int32(s.capOf(source)))
		if up != nil {
			// Hidden: none; shown again: the layer it had; lowered: within the cap.
			s.point(up, source, s.layerNow(), false)
		}
		s.ctl.Unlock()
	}
}

// slotStreams adds the peer's video slots that forward a simulcast source to the
// allocation (a.streams, after the DownTracks'), with their sources' layer rates capped
// by the tiles, and returns them; the other slots' rates (audio, video without layers)
// come back as others. Allocator goroutine.
func (a *allocator) slotStreams(now time.Time, dt float64, first bool) (slots []*Slot, others, want float64) {
	a.p.mu.Lock()
	all := make([]*Slot, 0, len(a.p.slots))
	for s := range a.p.slots {
		all = append(all, s)
	}
	a.p.mu.Unlock()
	if a.slotOthers == nil {
		a.slotOthers, a.slotLayers = map[*Slot]counterSample{}, map[*UpTrack]counterSample{}
	}
	seen := map[*UpTrack]float64{} // the layers measured this round, and their rates
	kept := map[*Slot]bool{}
	for _, s := range all {
		s.mu.Lock()
		src := s.src
		s.mu.Unlock()
		rates := make([]float64, maxLayers)
		// A relayed layered source is weighed as the bridge before reported its layers
		// (CAUR); the slot's choice goes back as its need.
		relayed := src != nil && src.sim == nil && src.kind == webrtc.RTPCodecTypeVideo && src.layered(now, rates)
		if src == nil || (src.sim == nil && !relayed) {
			kept[s] = true
			c := counterSample{bytes: s.BytesSent(), packets: s.PacketsSent()}
			if prev, ok := a.slotOthers[s]; ok && !first {
				others += rate(prev, c, dt)
			}
			a.slotOthers[s] = c
			continue
		}
		for i := range rates {
			if relayed {
				break
			}
			up := src.sim.layer(int8(i))
			if up == nil {
				continue
			}
			if r, ok := seen[up]; ok {
				rates[i] = r // measured this round already (for another slot)
				continue
			}
			c := counterSample{bytes: up.bytes.Load(), packets: up.packets.Load()}
			if prev, ok := a.slotLayers[up]; ok && !first {
				c.rate = rate(prev, c, dt)
				if prev.rate > 0 {
					c.rate = (c.rate + prev.rate) / 2 // as measure: one late burst moves nobody
				}
				if c.rate >= minLayerRate {
					rates[i] = c.rate
				}
			}
			a.slotLayers[up] = c
			seen[up] = rates[i]
		}
		for l := len(rates) - 1; l >= 0; l-- {
			if rates[l] > 0 {
				want += rates[l] // the estimate may grow to the top, caps or not (tick)
				break
			}
		}
		c := int(s.maxLayer.Load())
		if c < 0 {
			continue // a hidden tile: nothing forwarded, nothing to allocate
		}
		capRates(rates, c)
		prio := 0
		switch g := src.gateNow(); {
		case g != nil && g.pinned.Load():
			prio = 2 // the chair, the floor holder: their picture first
		case g != nil && g.dominant.Load():
			prio = 1 // then the one speaking
		}
		a.streams = append(a.streams, bwe.Stream{Rates: rates, Priority: prio})
		slots = append(slots, s)
	}
	for up := range a.slotLayers {
		if _, ok := seen[up]; !ok {
			delete(a.slotLayers, up)
		}
	}
	for s := range a.slotOthers {
		if !kept[s] {
			delete(a.slotOthers, s)
		}
	}
	return slots, others, want
}

// capRates takes the layers above cap c out of an allocation, though the lowest present
// stays when none is under it.
func capRates(rates []float64, c int) {
	lowest := -1
	for i, r := range rates {
		if r > 0 && (lowest < 0 || i <= c) {
			lowest = i
		}
	}
	for i := range rates {
		if i != lowest && i > c {
			rates[i] = 0
		}
	}
}
