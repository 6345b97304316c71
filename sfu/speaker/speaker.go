// Package speaker decides, from the audio levels publishers report (RFC 6464), who the
// dominant speaker of a group is and which sources a bridge forwards: the video of at
// most N (Last-N: the pinned sources, then the most recent speakers) and the audio of the
// pinned sources and the loudest few. It is pure logic over time given by the caller, so
// it is tested without a network; package sfu drives it from a ticker.
//
// Hysteresis keeps the choice steady. A challenger takes the dominant speaker's place
// only after being louder than it for SwitchAfter (a cough is shorter); a source stays in
// the audio set for Hangover after it falls silent (no clipped word ends, no flapping
// between two sites speaking in turn); the video set changes only when a source that is
// not in it becomes the dominant speaker.
package speaker

import "time"

// Params tunes a Selector. Zero fields take the defaults of DefaultParams.
type Params struct {
	// VideoN is how many sources' video is forwarded (default 9, DOMAIN.md's grid).
	VideoN int
	// AudioN is how many of the loudest sources' audio is forwarded besides the pinned ones
	// (default 3).
	AudioN int
	// Threshold is the loudness (127 − level in −dBov) above which a source is speaking:
	// 127 − 60 = 67, i.e. louder than −60 dBov. Browsers send 127 for digital silence and
	// 70..127 for room noise.
	Threshold float64
	// SwitchAfter is how long a challenger must be louder than the dominant speaker (or
	// speak while it is silent) to take its place.
	SwitchAfter time.Duration
	// Hangover is how long a source keeps its audio slot after it stops speaking.
	Hangover time.Duration
	// Smoothing is the weight of a new sample in the loudness average (0..1] as it falls;
	// it rises at once.
	Smoothing float64
}

// DefaultParams are the meeting defaults: 9 video tiles, 3 audio slots.
func DefaultParams() Params {
	return Params{VideoN: 9, AudioN: 3, Threshold: 67, SwitchAfter: 250 * time.Millisecond,
		Hangover: time.Second, Smoothing: 0.5}
}

func (p Params) withDefaults() Params {
	d := DefaultParams()
	if p.VideoN <= 0 {
		p.VideoN = d.VideoN
	}
	if p.AudioN <= 0 {
		p.AudioN = d.AudioN
	}
	if p.Threshold <= 0 {
		p.Threshold = d.Threshold
	}
	if p.SwitchAfter <= 0 {
		p.SwitchAfter = d.SwitchAfter
	}
	if p.Hangover <= 0 {
		p.Hangover = d.Hangover
	}
	if p.Smoothing <= 0 || p.Smoothing > 1 {
		p.Smoothing = d.Smoothing
	}
	return p
}

// quietAfter is how long a source may send no level before it counts as silent: longer
// than a burst of network jitter, shorter than a word.
const quietAfter = 300 * time.Millisecond

// ID names a source: one publisher, whose audio and video are chosen together.
type ID string

type source struct {
	id       ID
	order    int       // join order: who fills the grid before anyone has spoken
	loudness float64   // smoothed 127 − level; 0 for silence
	spoke    time.Time // the last tick it was speaking
	heard    time.Time // the last tick it sent a level
	louder   time.Time // since when it has been louder than the dominant speaker; zero if not
	lastDom  time.Time // when it was last the dominant speaker; zero if never
	pinned   bool
	video    bool // has video here: only those take a video slot
}

// Selector holds one group's sources. It is not safe for concurrent use: package sfu
// calls it from one goroutine.
type Selector struct {
	p        Params
	sources  map[ID]*source
	joined   int
	dominant ID
	changes  uint64
	video    map[ID]bool
	audio    map[ID]bool
	held     map[ID]bool // the audio set before the last choice (choose's scratch)
	scratch  []*source
}

// New returns an empty Selector.
func New(p Params) *Selector {
	return &Selector{p: p.withDefaults(), sources: map[ID]*source{}, video: map[ID]bool{}, audio: map[ID]bool{},
		held: map[ID]bool{}}
}

// Params returns the parameters in force (defaults filled in).
func (s *Selector) Params() Params { return s.p }

// Add makes id a candidate; adding it again does nothing.
func (s *Selector) Add(id ID) {
	if _, ok := s.sources[id]; ok {
		return
	}
	s.joined++
	s.sources[id] = &source{id: id, order: s.joined}
}

// Remove drops id; if it was the dominant speaker there is none until someone speaks.
func (s *Selector) Remove(id ID) {
	delete(s.sources, id)
	if s.dominant == id {
		s.dominant = ""
	}
}

// Pin always forwards id's video and audio (the chair, the floor holder), or stops doing
// so. Pinned sources count towards VideoN; they do not take an audio slot.
func (s *Selector) Pin(id ID, on bool) {
	if src := s.sources[id]; src != nil {
		src.pinned = on
	}
}

// SetVideo says whether id has video to forward. A source without (audio only, or whose
// video does not reach this bridge because the bridge before it holds it back) takes no
// video slot, so the grid is filled with videos that can be shown.
func (s *Selector) SetVideo(id ID, on bool) {
	if src := s.sources[id]; src != nil {
		src.video = on
	}
}

// Dominant is the current dominant speaker, "" before anyone has spoken.
func (s *Selector) Dominant() ID { return s.dominant }

// Changes counts dominant-speaker changes since New.
func (s *Selector) Changes() uint64 { return s.changes }

// Video reports whether id's video is forwarded, as of the last Update.
func (s *Selector) Video(id ID) bool { return s.video[id] }

// Audio reports whether id's audio is forwarded, as of the last Update.
func (s *Selector) Audio(id ID) bool { return s.audio[id] }

// Update takes one interval's loudness per source (127 − the mean RFC 6464 level of the
// packets received, 0 for a source that sent none or only silence) and recomputes the
// dominant speaker and the forwarded sets. level may be called for every source and
// returns ok false for one that sent no packet in the interval.
func (s *Selector) Update(now time.Time, level func(ID) (loudness float64, ok bool)) {
	a := s.p.Smoothing
	for _, src := range s.sources {
		l, ok := level(src.id)
		if !ok {
			// No packet this interval: jitter or a loaded reader (keep the last level), or
			// silence with DTX (an encoder that stops sending) once it lasts.
			if now.Sub(src.heard) < quietAfter {
				continue
			}
			l = 0
		} else {
			src.heard = now
		}
		// Rise at once (a new talker's first syllable counts), fall smoothly (the pauses
		// between words do not make a speaker silent).
		src.loudness = max(l, a*l+(1-a)*src.loudness)
		if src.loudness >= s.p.Threshold {
			src.spoke = now
		}
	}
	s.elect(now)
	s.choose(now)
}

func (s *Selector) speaking(src *source) bool { return src.loudness >= s.p.Threshold }

// elect applies the hysteresis: the loudest challenger must stay louder than the dominant
// speaker for SwitchAfter; with no dominant speaker the first one to speak takes the place
// at once (the first syllable of a meeting is not delayed).
func (s *Selector) elect(now time.Time) {
	dom := s.sources[s.dominant]
	var best *source
	for _, src := range s.sources {
		if src == dom || !s.speaking(src) {
			src.louder = time.Time{}
			continue
		}
		if dom != nil && s.speaking(dom) && src.loudness <= dom.loudness {
			src.louder = time.Time{}
			continue
		}
		if src.louder.IsZero() {
			src.louder = now
		}
		if best == nil || src.loudness > best.loudness || (src.loudness == best.loudness && src.order < best.order) {
			best = src
		}
	}
	if best == nil {
		return
	}
	// The switch needs a level heard now: a held one (no packet this interval) keeps a
	// challenger's streak going but cannot complete it, so a cough followed by DTX silence
	// never takes the floor.
	if dom == nil || (now.Sub(best.louder) >= s.p.SwitchAfter && best.heard.Equal(now)) {
		s.dominant = best.id
		best.lastDom = now
		best.louder = time.Time{}
		s.changes++
	}
	if d := s.sources[s.dominant]; d != nil && s.speaking(d) {
		d.lastDom = now
	}
}

// choose fills the video and audio sets. Only the first few of each order matter, so
// they are picked with a bounded insertion (O(sources × N)), not a sort: a national
// meeting has thousands of sources and this runs every tick.
func (s *Selector) choose(now time.Time) {
	dom := s.dominant
	// Video: among the sources with video, pinned first, then the dominant speaker, then
	// by how recently each was dominant, then by join order (before anyone spoke, the
	// grid is the first to join).
	videoFirst := func(x, y *source) bool {
		if x.video != y.video {
			return x.video
		}
		if x.pinned != y.pinned {
			return x.pinned
		}
		if (x.id == dom) != (y.id == dom) {
			return x.id == dom
		}
		if !x.lastDom.Equal(y.lastDom) {
			return x.lastDom.After(y.lastDom)
		}
		return x.order < y.order
	}
	clear(s.video)
	for _, src := range s.top(s.p.VideoN, videoFirst, nil) {
		if !src.video {
			break
		}
		s.video[src.id] = true
	}

	// Audio: pinned sources, then the AudioN loudest of those speaking now or within the
	// hangover (the dominant speaker first, so it is never the one left out). A group no
	// larger than the audio slots hears everyone.
	// A source keeps its slot after the hangover while nobody else needs it: two sites
	// speaking in turns of about the hangover would otherwise lose and regain their slots
	// at each turn (the first syllable of each turn clipped). Silent, it ranks last, so a
	// new talker takes its slot at once. Only a source that has spoken keeps one: a slot
	// given while the group was small must not hold a silent site's audio on every relay
	// link for the rest of the meeting.
	s.held, s.audio = s.audio, s.held
	clear(s.audio)
	recent := func(x *source) bool {
		if x.spoke.IsZero() {
			return false
		}
		return s.held[x.id] || now.Sub(x.spoke) <= s.p.Hangover
	}
	audioFirst := func(x, y *source) bool {
		if (x.id == dom) != (y.id == dom) {
			return x.id == dom
		}
		if x.loudness != y.loudness {
			return x.loudness > y.loudness
		}
		return x.order < y.order
	}
	small := len(s.sources) <= s.p.AudioN
	for _, src := range s.sources {
		if src.pinned || small {
			s.audio[src.id] = true
		}
	}
	eligible := func(x *source) bool { return !x.pinned && (recent(x) || x.id == dom) }
	for _, src := range s.top(s.p.AudioN, audioFirst, eligible) {
		s.audio[src.id] = true
	}
}

// top returns the k first sources in the order first, among those keep accepts (all if
// nil). The slice is s.scratch, valid until the next call.
func (s *Selector) top(k int, first func(x, y *source) bool, keep func(*source) bool) []*source {
	out := s.scratch[:0]
	if k <= 0 {
		return out
	}
	for _, src := range s.sources {
		if keep != nil && !keep(src) {
			continue
		}
		if len(out) == k && !first(src, out[k-1]) {
			continue
		}
		if len(out) < k {
			out = append(out, src)
		} else {
			out[k-1] = src
		}
		for i := len(out) - 1; i > 0 && first(out[i], out[i-1]); i-- {
			out[i], out[i-1] = out[i-1], out[i]
		}
	}
	s.scratch = out
	return out
}

// Reselect recomputes the forwarded sets without new levels: after Add, Remove or Pin,
// so a change takes effect before the next interval.
func (s *Selector) Reselect(now time.Time) {
	s.choose(now)
}
