package sfu

import (
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/sfu/speaker"
)

// SlotSetParams configures a subscriber's slots (AddSlots).
type SlotSetParams struct {
	// Audio and Video are the numbers of slots of each kind: a meeting's AudioN plus its
	// pinned sources (the chair, the floor holder), and its VideoN.
	Audio, Video int
	// Self is the subscriber's own source, never forwarded to it.
	Self string
	// OnMap is called with the whole slot map each time it changes, before the slots
	// change source (a page learns which name to show on a tile before its picture
	// changes). It runs on the selector's goroutine and must not block.
	OnMap func([]SlotSource)
}

// SlotSource says which source a slot forwards ("" for none).
type SlotSource struct {
	Slot   *Slot
	Source string
}

// SlotSet is a subscriber's slots fed by a Selector's choice (Selector.Follow): the
// selected sources but the subscriber's own are mapped into the slots of their kind, each
// keeping its slot while it stays selected.
type SlotSet struct {
	params       SlotSetParams
	audio, video []*Slot
	// last is the map last reported (selector goroutine only).
	last []SlotSource
	// caps is the tiles' cap per source (SetCaps, slotalloc.go), read by the video slots.
	caps atomic.Pointer[tileCaps]
}

// AddSlots adds p.Audio audio and p.Video video slots to the subscriber connection
// (track ids "slot-a0".., "slot-v0"..; each its own stream, so a page shows each video
// slot as its own tile).
func (p *Peer) AddSlots(params SlotSetParams) (*SlotSet, error) {
	set := &SlotSet{params: params}
	for i := range params.Audio {
		s, err := p.AddSlot(webrtc.RTPCodecTypeAudio, fmt.Sprintf("slot-a%d", i), fmt.Sprintf("slot-a%d", i))
		if err != nil {
			return nil, err
		}
		set.audio = append(set.audio, s)
	}
	for i := range params.Video {
		s, err := p.AddSlot(webrtc.RTPCodecTypeVideo, fmt.Sprintf("slot-v%d", i), fmt.Sprintf("slot-v%d", i))
		if err != nil {
			return nil, err
		}
		s.caps = &set.caps
		set.video = append(set.video, s)
	}
	return set, nil
}

// Audio returns the audio slots, in order.
func (set *SlotSet) Audio() []*Slot { return set.audio }

// Video returns the video slots, in order.
func (set *SlotSet) Video() []*Slot { return set.video }

// slotCandidate is a selected source's track, in the order slots are given out.
type slotCandidate struct {
	source string
	up     *UpTrack
}

// assign maps the selected sources into the slots and reports the map if it changed.
// Selector goroutine only.
func (set *SlotSet) assign(audio, video []slotCandidate) {
	type point struct {
		slot *Slot
		c    slotCandidate
	}
	var points []point
	var out []SlotSource
	for _, k := range []struct {
		slots []*Slot
		cands []slotCandidate
	}{{set.audio, audio}, {set.video, video}} {
		given := make([]slotCandidate, len(k.slots))
		used := make([]bool, len(k.cands))
		// A source selected still keeps its slot.
		for i, s := range k.slots {
			now := s.pointed()
			for j, c := range k.cands {
				if !used[j] && now != nil && c.up == now && c.source != set.params.Self {
					given[i], used[j] = c, true
					break
				}
			}
		}
		// The others take free slots, in order.
		free := 0
		for j, c := range k.cands {
			if used[j] || c.source == set.params.Self || (len(k.slots) > 0 && !k.slots[0].accepts(c.up)) {
				continue // (a codec the subscriber cannot decode: the next source takes the slot)
			}
			for free < len(given) && given[free].up != nil {
				free++
			}
			if free == len(given) {
				break // more selected than slots: the last in order are left out
			}
			given[free] = c
		}
		for i, s := range k.slots {
			points = append(points, point{s, given[i]})
			out = append(out, SlotSource{Slot: s, Source: given[i].source})
		}
	}
	if !slices.Equal(out, set.last) {
		set.last = out
		if set.params.OnMap != nil {
			set.params.OnMap(slices.Clone(out))
		}
	}
	for _, p := range points {
		p.slot.Point(p.c.up, p.c.source, maxLayers-1) // the slot's own layer (slotalloc.go)
	}
}

// pointed is the source track the slot was last pointed at, nil for none.
func (s *Slot) pointed() *UpTrack {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.src
}

// Follow feeds set from the selector's choice, from its next tick, until Unfollow.
func (s *Selector) Follow(set *SlotSet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.follow == nil {
		s.follow = map[*SlotSet]struct{}{}
	}
	s.follow[set] = struct{}{}
	s.slotsDirty = true
}

// Unfollow stops feeding set; its slots keep their sources until pointed elsewhere.
func (s *Selector) Unfollow(set *SlotSet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.follow, set)
}

// slotCandidates lists the selected sources' tracks by kind, in the order slots are
// given out: pinned, then the dominant speaker, then by source. Caller holds s.mu.
func (s *Selector) slotCandidates() (audio, video []slotCandidate) {
	dom := s.sel.Dominant()
	for t, g := range s.members {
		if !g.on.Load() {
			continue
		}
		c := slotCandidate{source: string(g.source), up: t}
		if g.kind == webrtc.RTPCodecTypeVideo {
			video = append(video, c)
		} else {
			audio = append(audio, c)
		}
	}
	rank := func(c slotCandidate) int {
		switch {
		case s.pins[speaker.ID(c.source)]:
			return 0
		case speaker.ID(c.source) == dom:
			return 1
		}
		return 2
	}
	order := func(x, y slotCandidate) int {
		if d := rank(x) - rank(y); d != 0 {
			return d
		}
		if x.source != y.source {
			if x.source < y.source {
				return -1
			}
			return 1
		}
		if x.up.id < y.up.id {
			return -1
		}
		if x.up.id > y.up.id {
			return 1
		}
		return 0
	}
	slices.SortFunc(audio, order)
	slices.SortFunc(video, order)
	return audio, video
}

// feedSlots remaps the followed slot sets when the choice changed. Selector goroutine
// only; the caller does not hold s.mu.
func (s *Selector) feedSlots(changed bool) {
	s.mu.Lock()
	if !changed && !s.slotsDirty {
		s.mu.Unlock()
		return
	}
	s.slotsDirty = false
	audio, video := s.slotCandidates()
	sets := make([]*SlotSet, 0, len(s.follow))
	for set := range s.follow {
		sets = append(sets, set)
	}
	s.mu.Unlock()
	for _, set := range sets {
		set.assign(audio, video)
	}
}
