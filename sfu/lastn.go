package sfu

import (
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/internal/tick"
	"github.com/cau-project/cau/sfu/speaker"
)

// SelectorParams configures a Selector.
type SelectorParams struct {
	// Speaker tunes the choice (Last-N, audio slots, hysteresis); zero fields take
	// speaker.DefaultParams.
	Speaker speaker.Params
	// Tick is how often levels are read and the choice remade (default 50 ms: a new
	// talker's audio is let through within about a tick).
	Tick time.Duration
	// OnChange is called, on the selector's goroutine, when the dominant speaker or the
	// set of sources whose video is forwarded changes. It must not block.
	OnChange func(Selection)
	Logger   *slog.Logger
}

// Selector applies Last-N and dominant-speaker selection to a group of published tracks
// (one meeting's, on this bridge): every subscriber and every relay link of the group
// receives the video of at most Speaker.VideoN sources and the audio of the pinned
// sources and the Speaker.AudioN loudest. A track not selected is paused for all its
// subscribers at once (its gate is shut), so the bridge sends nothing for it and a relay
// link carries a bounded number of streams whatever the meeting's size.
//
// The reader goroutines only read their track's gate and add to its level counters
// (atomics, no allocation); the selector's goroutine reads the levels every Tick, runs
// package speaker and opens or shuts the gates. Opening a video gate asks the publisher
// for a keyframe; the track's subscribers resume at it, with their sequence numbers
// continuous across the pause.
type Selector struct {
	params SelectorParams
	log    *slog.Logger

	mu      sync.Mutex // guards sel, members, pins, follow and slotsDirty
	sel     *speaker.Selector
	members map[*UpTrack]*gate
	// pins are the sources pinned (Pin), kept so a source pinned before its tracks are
	// added, or added again (a relay re-established), is pinned as it comes.
	pins map[speaker.ID]bool
	// follow are the subscribers' slot sets fed from the choice (slotset.go); slotsDirty
	// is set when a member or a set came or went, so the slots are remapped at the next
	// tick even if the choice is the same.
	follow     map[*SlotSet]struct{}
	slotsDirty bool

	dominant atomic.Pointer[string]
	// shown is the video set last reported to OnChange, heard the audio set at the last
	// tick (selector goroutine only).
	shown, heard []string
	stop         chan struct{}
	stopOnce     sync.Once
	done         chan struct{}
}

// Selection is what a group's selector chose: the dominant speaker ("" before anyone has
// spoken) and the sources whose video is forwarded (Last-N), sorted.
type Selection struct {
	Dominant string
	Video    []string
}

// gate is what a track's reader consults about its selection. on is written by the
// selector's goroutine; sum and n are added to by the reader and swapped to zero by the
// selector.
type gate struct {
	source speaker.ID
	kind   webrtc.RTPCodecType
	on     atomic.Bool
	opens  atomic.Uint64 // times the gate opened after Add (pauses that ended)
	// pinned is set while the source is pinned (the chair, the floor holder): a link's
	// allocator gives its simulcast layers first call on the bandwidth.
	pinned atomic.Bool
	// dominant is set while the source is the dominant speaker: after the pinned, its
	// layers come before the other sources' on every link (selector goroutine writes).
	dominant atomic.Bool
	sum      atomic.Uint64 // Σ (127 − level) over the interval's audio packets
	n        atomic.Uint64 // packets with a level in the interval

	// Whether video arrives (selector goroutine only): the packets counted at the last
	// tick, since when none came, and whether the source counts as having video.
	seen       uint64
	quietSince time.Time
	hasVideo   bool
}

// videoQuiet is how long a video track may receive nothing before its source stops
// counting as having video. On a bridge down a relay link a paused track is one the
// bridge before it holds back: it must not take a place in the grid here.
const videoQuiet = time.Second

// observe records one packet's RFC 6464 level (−dBov, 0 loudest, 127 silence).
func (g *gate) observe(level uint8) {
	g.sum.Add(uint64(127 - min(level, 127)))
	g.n.Add(1)
}

// NewSelector starts a selector with the bridge's Last-N tuning (Config.Speaker) where p
// leaves it zero; Close stops it.
func (b *Bridge) NewSelector(p SelectorParams) *Selector {
	if p.Speaker == (speaker.Params{}) {
		p.Speaker = b.speaker
	}
	if p.Logger == nil {
		p.Logger = b.log
	}
	return NewSelector(p)
}

// NewSelector starts a selector; Close stops it.
func NewSelector(p SelectorParams) *Selector {
	if p.Tick <= 0 {
		p.Tick = 50 * time.Millisecond
	}
	log := p.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Selector{params: p, log: log, sel: speaker.New(p.Speaker), members: map[*UpTrack]*gate{}, pins: map[speaker.ID]bool{},
		stop: make(chan struct{}), done: make(chan struct{})}
	empty := ""
	s.dominant.Store(&empty)
	go s.run()
	return s
}

// Add puts t in the group as one of source's tracks (a publisher's audio and video share
// a source). Its gate takes the current choice at once.
func (s *Selector) Add(t *UpTrack, source string) {
	g := &gate{source: speaker.ID(source), kind: t.kind}
	s.mu.Lock()
	if old := s.members[t]; old != nil {
		s.mu.Unlock()
		return
	}
	s.sel.Add(g.source)
	if s.pins[g.source] {
		s.sel.Pin(g.source, true)
		g.pinned.Store(true)
	}
	if g.kind == webrtc.RTPCodecTypeVideo {
		g.hasVideo, g.seen = true, t.PacketsReceived()
		s.sel.SetVideo(g.source, true)
	}
	s.sel.Reselect(time.Now())
	s.members[t] = g
	g.on.Store(s.wanted(g))
	s.slotsDirty = true
	s.mu.Unlock()
	if t.kind == webrtc.RTPCodecTypeAudio && t.levelID == 0 {
		// Without levels (a SIP gateway, an old client) the selector cannot know when the
		// source speaks: its audio is always forwarded, never clipped.
		return
	}
	t.gate.Store(g)
}

// Remove takes t out of the group; it is forwarded to all its subscribers again.
func (s *Selector) Remove(t *UpTrack) {
	s.mu.Lock()
	g := s.members[t]
	delete(s.members, t)
	if g != nil {
		s.slotsDirty = true
		last := true
		for _, o := range s.members {
			if o.source == g.source {
				last = false
				break
			}
		}
		if last {
			s.sel.Remove(g.source)
		} else if g.kind == webrtc.RTPCodecTypeVideo {
			s.sel.SetVideo(g.source, false)
		}
		s.sel.Reselect(time.Now())
	}
	s.mu.Unlock()
	if g != nil {
		t.gate.CompareAndSwap(g, nil)
		if t.kind == webrtc.RTPCodecTypeVideo {
			t.RequestKeyframe() // its paused subscribers resume at a keyframe
		}
	}
}

// Pin always forwards source (the chair, the floor holder), or stops doing so, from the
// selector's next tick; a source pinned before its tracks are added is pinned as they come.
func (s *Selector) Pin(source string, on bool) {
	id := speaker.ID(source)
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.pins[id] = true
	} else {
		delete(s.pins, id)
	}
	s.sel.Pin(id, on)
	for _, g := range s.members {
		if g.source == id {
			g.pinned.Store(on)
		}
	}
}

// Params is the selector's tuning, defaults filled in.
func (s *Selector) Params() speaker.Params {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sel.Params()
}

// Dominant is the group's dominant speaker, "" before anyone has spoken.
func (s *Selector) Dominant() string { return *s.dominant.Load() }

// Selected reports whether t is forwarded now.
func (s *Selector) Selected(t *UpTrack) bool {
	g := t.gate.Load()
	return g == nil || g.on.Load()
}

// Resumes counts the pauses of t that ended since it joined the selector.
func (s *Selector) Resumes(t *UpTrack) uint64 {
	if g := t.gate.Load(); g != nil {
		return g.opens.Load()
	}
	return 0
}

// Close stops the selector and opens every gate.
func (s *Selector) Close() {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	s.mu.Lock()
	members := s.members
	s.members = map[*UpTrack]*gate{}
	s.mu.Unlock()
	for t, g := range members {
		t.gate.CompareAndSwap(g, nil)
	}
}

func (s *Selector) run() {
	defer close(s.done)
	tick.Every(s.stop, s.params.Tick, s.update)
}

// wanted is g's gate under the current choice. Caller holds s.mu.
func (s *Selector) wanted(g *gate) bool {
	if g.kind == webrtc.RTPCodecTypeVideo {
		return s.sel.Video(g.source)
	}
	return s.sel.Audio(g.source)
}

// noteVideo tells the speaker selector whether t's video arrives. Caller holds s.mu.
func (s *Selector) noteVideo(t *UpTrack, g *gate, now time.Time) {
	n := t.PacketsReceived()
	switch {
	case n != g.seen:
		g.seen, g.quietSince = n, time.Time{}
		if !g.hasVideo {
			g.hasVideo = true
			s.sel.SetVideo(g.source, true)
		}
	case t.needOff.Load():
		// This bridge asked the link not to send it (nobody here needs it): not a video
		// that stopped. Its grace starts when it is asked for again. A pinned source or the
		// dominant speaker that went quiet once (a relay link still connecting, a stalled
		// bridge before) counts as having video again: without a slot it is not asked for,
		// so it could never arrive to win one back, and the chair's video would stay lost
		// on this bridge for the rest of the meeting (signaling.TestNationalMeeting).
		g.quietSince = time.Time{}
		if !g.hasVideo && (g.pinned.Load() || g.dominant.Load()) {
			g.hasVideo = true
			s.sel.SetVideo(g.source, true)
		}
	case g.quietSince.IsZero():
		g.quietSince = now
	case g.hasVideo && now.Sub(g.quietSince) >= videoQuiet:
		g.hasVideo = false
		s.sel.SetVideo(g.source, false)
	}
}

// update reads the interval's levels, remakes the choice and moves the gates. Runs on
// the selector's goroutine.
func (s *Selector) update(now time.Time) {
	var opened []*UpTrack
	s.mu.Lock()
	loud := make(map[speaker.ID]float64, len(s.members))
	for _, g := range s.members {
		if g.kind != webrtc.RTPCodecTypeAudio {
			continue
		}
		sum, n := g.sum.Swap(0), g.n.Swap(0)
		if n == 0 {
			continue
		}
		if l := float64(sum) / float64(n); l > loud[g.source] {
			loud[g.source] = l
		}
	}
	for t, g := range s.members {
		// Only a relayed video can be held back before this bridge; a publisher's own
		// always arrives here (a reader stalled by load must not lose its grid place).
		if g.kind == webrtc.RTPCodecTypeVideo && t.owner.params.Relay {
			s.noteVideo(t, g, now)
		}
	}
	before := s.sel.Dominant()
	s.sel.Update(now, func(id speaker.ID) (float64, bool) {
		l, ok := loud[id]
		return l, ok
	})
	for t, g := range s.members {
		want := s.wanted(g)
		if g.on.Swap(want) != want && want {
			g.opens.Add(1)
			if g.kind == webrtc.RTPCodecTypeVideo {
				opened = append(opened, t)
			}
		}
	}
	after := s.sel.Dominant()
	for _, g := range s.members {
		g.dominant.Store(g.source == after && after != "")
	}
	video, audio := s.videoOn(), s.audioOn()
	s.mu.Unlock()
	// Outside the lock: a keyframe request writes RTCP.
	for _, t := range opened {
		t.RequestKeyframe()
	}
	if after != before {
		d := string(after)
		s.dominant.Store(&d)
		s.log.Debug("dominant speaker", "source", d, "was", string(before))
	}
	changed := !slices.Equal(audio, s.heard)
	s.heard = audio
	if after != before || !slices.Equal(video, s.shown) {
		changed = true
		s.shown = video
		if s.params.OnChange != nil {
			s.params.OnChange(Selection{Dominant: string(after), Video: video})
		}
	}
	s.feedSlots(changed)
}

// videoOn lists, sorted, the sources whose video gate is open. Caller holds s.mu.
func (s *Selector) videoOn() []string { return s.open(webrtc.RTPCodecTypeVideo) }

// audioOn lists, sorted, the sources whose audio gate is open. Caller holds s.mu.
func (s *Selector) audioOn() []string { return s.open(webrtc.RTPCodecTypeAudio) }

// open lists, sorted, the sources whose gate of kind is open. Caller holds s.mu.
func (s *Selector) open(kind webrtc.RTPCodecType) []string {
	var out []string
	for _, g := range s.members {
		if g.kind == kind && g.on.Load() && !slices.Contains(out, string(g.source)) {
			out = append(out, string(g.source))
		}
	}
	slices.Sort(out)
	return out
}
