package sfu

import (
	"slices"
	"time"
)

// Dynacast (issue 10): a simulcast layer nobody needs is paused at its publisher. What a
// subscription needs of a source is its cap (capAt: the subscriber's tile, and on a relay
// link the need the bridge beyond reported, CAUN); a subscription Last-N holds back, or a
// hidden tile, needs nothing; the recorder needs the top. Every dynacastTick the
// publisher's peer works out, per source, the highest layer anyone needs; a layer above
// it that nobody has needed for dynacastOffAfter is reported paused
// (PeerParams.OnPublishLayers), one needed again is reported active at once and asked for
// a keyframe. The page then sets its encodings' active flags; the bridge only reports.
//
// The caps, not the allocators' choices, make the need: a paused layer has no rate, so
// no allocator would ever choose it again. A bridge beyond a relay link learns the rate
// a paused layer had (CAUR carries it, allocator.measure), so its own allocators can
// still choose it and its need report brings the layer back.

const (
	// dynacastTick is how often a publisher's sources' needs are looked at.
	dynacastTick = 250 * time.Millisecond
	// dynacastOffAfter is how long a layer must be needed by nobody before it is paused:
	// a tile resized back and forth, a Last-N flap or a subscriber moving between bridges
	// costs no keyframe and no message to the page.
	dynacastOffAfter = 3 * time.Second
)

// layerSwitch is the hysteresis of one source's active layers. Dynacast goroutine only.
type layerSwitch struct {
	active     [maxLayers]bool      // what the publisher was last told (all at first)
	lastNeeded [maxLayers]time.Time // when each layer was last needed
}

func newLayerSwitch(now time.Time) *layerSwitch {
	s := &layerSwitch{}
	for i := range s.active {
		s.active[i] = true
		s.lastNeeded[i] = now
	}
	return s
}

// step takes the highest layer needed now (-1: none), updates the layers to send
// (s.active) and returns those just turned on and off. A layer turns on as soon as it is
// needed, off only after dynacastOffAfter unneeded.
func (s *layerSwitch) step(now time.Time, need int8) (turnedOn, turnedOff [maxLayers]bool) {
	for i := range s.active {
		needed := int8(i) <= need
		if needed {
			s.lastNeeded[i] = now
		}
		on := needed || now.Sub(s.lastNeeded[i]) < dynacastOffAfter
		if on != s.active[i] {
			turnedOn[i], turnedOff[i] = on, !on
			s.active[i] = on
		}
	}
	return turnedOn, turnedOff
}

// need is the highest layer anyone on this bridge needs of the source now, -1 for none.
func (s *simulcast) need(now time.Time) int8 {
	need := int8(-1)
	for i := range s.layers {
		up := s.layers[i].Load()
		if up == nil {
			continue
		}
		if len(*up.taps.Load()) > 0 {
			return maxLayers - 1 // the recorder keeps the best picture
		}
		for _, d := range *up.downs.Load() {
			if d.Paused() {
				continue // Last-N holds it back: nobody sees it
			}
			need = max(need, d.capAt(now))
		}
	}
	return need
}

// activeRIDs lists the RIDs of the source's present layers that are on, lowest first.
func (s *simulcast) activeRIDs(on [maxLayers]bool) []string {
	rids := []string{}
	for i := range s.layers {
		if up := s.layers[i].Load(); up != nil && on[i] {
			rids = append(rids, up.rid)
		}
	}
	return rids
}

// runDynacast is a publishing peer's dynacast goroutine; it ends with the peer (quit).
func (p *Peer) runDynacast(quit <-chan struct{}) {
	tick := time.NewTicker(dynacastTick)
	defer tick.Stop()
	state := map[*simulcast]*layerSwitch{}
	for {
		select {
		case <-quit:
			return
		case now := <-tick.C:
			p.dynacastStep(now, state)
		}
	}
}

// dynacastStep is one look at the peer's sources. Dynacast goroutine.
func (p *Peer) dynacastStep(now time.Time, state map[*simulcast]*layerSwitch) {
	p.mu.Lock()
	sims := make([]*simulcast, 0, len(p.sims))
	for _, g := range p.sims {
		sims = append(sims, g)
	}
	p.mu.Unlock()
	for _, g := range sims {
		st := state[g]
		if st == nil {
			st = newLayerSwitch(now)
			state[g] = st
		}
		turnedOn, turnedOff := st.step(now, g.need(now))
		if turnedOn == ([maxLayers]bool{}) && turnedOff == ([maxLayers]bool{}) {
			continue
		}
		for i, on := range turnedOn {
			if up := g.layer(int8(i)); on && up != nil {
				up.RequestKeyframe() // the subscribers switch to it at its first keyframe
			}
		}
		for i := range g.layers {
			if up := g.layers[i].Load(); up != nil {
				up.dynPaused.Store(!st.active[i])
			}
		}
		rids := g.activeRIDs(st.active)
		p.log.Debug("publish layers", "track", g.primary.id, "active", rids)
		if m := p.bridge.metrics; m != nil && m.DynacastLayers != nil {
			for i := range turnedOn {
				if turnedOn[i] {
					m.DynacastLayers.WithLabelValues("resume").Inc()
				}
				if turnedOff[i] {
					m.DynacastLayers.WithLabelValues("pause").Inc()
				}
			}
		}
		p.params.OnPublishLayers(g.primary, rids)
	}
	for g := range state {
		if !slices.Contains(sims, g) {
			delete(state, g)
		}
	}
}
