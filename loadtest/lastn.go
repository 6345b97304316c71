package loadtest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/tick"
	"github.com/cau-project/cau/protocol"
)

// Last-N accounting (issue 10). With Config.Talkers the publishers send audio levels: the
// talkers (publishers 1..Talkers, never the chair) speak in turns of TalkEvery, one at a
// time, and the others are silent. With Config.ViewTiles every endpoint tells the server
// its grid (a view message: one large tile, small ones, the rest hidden). At 65%, 80% and
// 95% of each turn, when the server has had time to follow, the tester compares for every
// subscriber what it receives with what the meeting's Last-N says it should, and gives
// the turn's verdict per subscriber (a stream counts as over- or under-delivered only if it
// was so at all three samples: a moment's stall of a loaded box is a glitch, not a miss):
//
//   - audio: the pinned sources (the chair's site, the floor holders, the chair's pins)
//     always; the talker of the turn always; never a source that has not talked, and at
//     most AudioN + the pinned in all (a source that talked may keep its slot after its
//     turn while nobody else needs it);
//   - video: at most VideoN; the grid's head always (the pinned, then the talkers by how
//     recently each talked), unless the subscriber's view hides it; never a hidden tile.
//
// A stream received that may not be is over-delivery; an expected one missing is
// under-delivery. The tester also times, per turn and subscriber that was not receiving
// the talker, how long after the talker started its audio arrived.

// Tile heights of the bots' views, in device pixels: the large tile takes the top
// simulcast layer, the small ones the low (protocol.LayerForHeight).
const (
	largeTile = 720
	smallTile = 180
)

// Loudness of a talker and of the silent (127 − the RFC 6464 level): speech, and digital
// silence.
const (
	talkLoudness   = 90
	silentLoudness = 0
)

// flowingWithin is how recent, by when it was sent, a stream's newest packet must be for
// the stream to count as received at a sample: a few audio packets, or a few frames at a
// low frame rate. It is counted back from the newest packet the subscriber received on
// any stream, not from the sample's time, so that a tester or server stalled for a moment
// (a loaded box) does not make every stream look stopped, and by the publisher's send time
// (the probe's), so that packets queued during a stall and read after it do not make a
// stream let go look forwarded; from the sample's time if that packet is older than
// stalledAfter (the subscriber receives nothing: under-delivery).
const (
	flowingWithin = 500 * time.Millisecond
	stalledAfter  = 3 * time.Second
)

// videoSettle is how long a talker must have talked before its video is due in the grid:
// the bridge lets it in once it is the dominant speaker (after SwitchAfter), then its
// publisher resumes the layers dynacast paused and sends a keyframe.
const videoSettle = time.Second

// sampleLead is how long before a turn ends the delivery is sampled.
const sampleLead = 50 * time.Millisecond

// lastnRun is a run's Last-N bookkeeping; nil without Talkers or ViewTiles.
type lastnRun struct {
	r       *runner
	talkers []*bot // publishers 1..Talkers

	mu        sync.Mutex // guards everything below
	turns     int
	lastTalk  map[int]time.Time // bot index → the start of its latest turn
	talkSince map[int]time.Time // bot index → the start of its first turn
	counts    struct{ audio, video []float64 }
	over      [2]int // audio, video
	under     [2]int
	samples   int
	missed    int // samples with any over- or under-delivery
	glitches  int // samples off at some of a turn's sample times, not all: a stall, not Last-N
	// tileStart are the video streams' layer counters at the first turn's end (judge).
	tileStart map[*client.Stream][3]int64
	misses    []string
	arrival   []float64 // ms from a turn's start to the talker's audio, where it was held back
	kept      int       // subscribers already receiving the talker when its turn began
	late      int       // subscribers the talker's audio did not reach within its turn
	dominant  string
	domSeen   int // dominant-speaker changes seen by the chair
	pinned    []string
	live      lastnLive
}

// lastnLive is what the progress line shows: the latest sample's worst subscriber.
type lastnLive struct {
	audio, video, over, under int
}

func newLastN(r *runner) *lastnRun {
	if r.cfg.Talkers == 0 && r.cfg.ViewTiles == 0 {
		return nil
	}
	l := &lastnRun{r: r, lastTalk: map[int]time.Time{}, talkSince: map[int]time.Time{}}
	l.talkers = append(l.talkers, r.bots[1:1+r.cfg.Talkers]...)
	return l
}

// chairSite is the site whose endpoints the meeting pins as the chair's: the first site.
func (r *runner) chairSite() string { return r.cfg.Sites[0].ID }

// sendView tells the server b's grid: the initial publishers but b in order, the first in
// a large tile, the next ViewTiles−1 in small ones, the others hidden.
func (b *bot) sendView(r *runner) {
	if r.cfg.ViewTiles == 0 || r.cfg.Media == MediaAudio {
		return
	}
	view := map[int]int{}
	var tiles []protocol.Tile
	for _, p := range r.bots[:r.cfg.Publishers] {
		if p == b || p.c == nil {
			continue
		}
		h := 0
		switch {
		case len(tiles) == 0:
			h = largeTile
		case len(tiles) < r.cfg.ViewTiles:
			h = smallTile
		}
		view[p.idx] = h
		tiles = append(tiles, protocol.Tile{Participant: p.c.Self.ID, Source: protocol.SourceCamera, Height: h})
	}
	if err := b.c.View(tiles); err != nil {
		r.errors.Add(1)
		b.log.Warn("view", "err", err)
		return
	}
	b.mu.Lock()
	b.view = view
	b.mu.Unlock()
}

// viewOf is b's view: publisher index → tile height (nil: no view sent).
func (b *bot) viewOf() map[int]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.view
}

// run speaks in turns (or, without talkers, waits a turn) and samples the delivery
// several times in the second half of each turn, until end or ctx ends.
func (l *lastnRun) run(ctx context.Context, end time.Time) {
	every := l.r.cfg.TalkEvery
	for i := 0; ; i++ {
		start := time.Now()
		if start.Add(every).After(end.Add(sampleLead)) {
			return
		}
		var who *bot
		if len(l.talkers) > 0 {
			who = l.talkers[i%len(l.talkers)]
			l.startTurn(who, start)
		}
		var at []time.Time
		for _, f := range sampleAt {
			at = append(at, start.Add(time.Duration(f*float64(every))))
		}
		at = append(at, start.Add(every-sampleLead))
		obs := l.watchTurn(ctx, who, start, at)
		if ctx.Err() != nil {
			return
		}
		l.judge(obs, i == 0)
		if !tick.Until(ctx, start.Add(every)) {
			return
		}
	}
}

// warmUp, before the window, lets each talker talk for a turn and waits (up to the join
// timeout) until every connected subscriber has received its audio: a barrier on the
// subscriber connections' negotiation of the talkers' tracks, which the joins' settling
// cannot wait for under Last-N (silent tracks carry nothing). The turns are not counted.
func (l *lastnRun) warmUp(ctx context.Context) {
	every := l.r.cfg.TalkEvery
	for _, who := range l.talkers {
		start := time.Now()
		l.startTurn(who, start)
		stream := ""
		if who.inMeeting() && l.r.cfg.Media != MediaVideo {
			stream = who.c.Self.Streams[protocol.SourceCamera]
		}
		poll(ctx, start.Add(l.r.cfg.JoinTimeout), func() (bool, bool) {
			for _, b := range l.r.bots {
				if b == who || !b.connected() || stream == "" {
					continue
				}
				if s := b.c.Stream(stream, "audio"); s == nil || s.Stats().Received == 0 {
					return false, false
				}
			}
			return time.Since(start) >= every, false
		})
	}
	for _, t := range l.talkers {
		if s := t.synth(); s != nil {
			s.SetLoudness(silentLoudness)
		}
	}
	l.watchDominant() // the warm-up's dominant speaker: the window counts changes from it
	l.mu.Lock()
	l.turns, l.domSeen = 0, 0
	l.mu.Unlock()
}

// sampleAt are the points of a turn, besides its end, where the delivery is sampled: a
// turn's verdict needs a stream missing (or received when it may not be) at every one of
// them, so a moment's stall of a loaded box is not taken for Last-N's doing.
var sampleAt = []float64{0.65, 0.8}

// startTurn makes who the only one talking.
func (l *lastnRun) startTurn(who *bot, at time.Time) {
	for _, t := range l.talkers {
		if s := t.synth(); s != nil {
			s.SetLoudness(silentLoudness)
		}
	}
	if s := who.synth(); s != nil {
		s.SetLoudness(talkLoudness)
	}
	l.mu.Lock()
	l.turns++
	l.lastTalk[who.idx] = at
	if _, ok := l.talkSince[who.idx]; !ok {
		l.talkSince[who.idx] = at
	}
	l.mu.Unlock()
}

// synth is the live publication's media source, nil when not publishing.
func (b *bot) synth() *client.Synth {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.publishing == nil {
		return nil
	}
	return b.publishing.synth
}

// watchTurn polls, every 10 ms until the last sample time, the subscribers that were not
// receiving who's audio when its turn began, and records how long after start it arrived;
// it counts the dominant-speaker changes the chair is told of, and takes the turn's
// samples at the times given.
func (l *lastnRun) watchTurn(ctx context.Context, who *bot, start time.Time, at []time.Time) []map[*bot]observation {
	type waiting struct {
		b    *bot
		prev int64
	}
	var wait []waiting
	stream := ""
	if who != nil && who.inMeeting() && l.r.cfg.Media != MediaVideo {
		stream = who.c.Self.Streams[protocol.SourceCamera]
	}
	kept := 0
	for _, b := range l.r.bots {
		if b == who || !b.connected() || stream == "" {
			continue
		}
		s := b.c.Stream(stream, "audio")
		var st client.StreamStats
		if s != nil {
			st = s.Stats()
		}
		if s != nil && start.Sub(st.Last) < flowingWithin/2 {
			kept++ // its slot was kept since an earlier turn: nothing was held back
			continue
		}
		wait = append(wait, waiting{b: b, prev: st.Received})
	}
	var arrived []float64
	var obs []map[*bot]observation
	poll(ctx, at[len(at)-1], func() (bool, bool) {
		l.watchDominant()
		if now := time.Now(); len(obs) < len(at) && !now.Before(at[len(obs)]) {
			obs = append(obs, l.observe(now, who))
		}
		rest := wait[:0]
		for _, w := range wait {
			s := w.b.c.Stream(stream, "audio")
			if s == nil {
				rest = append(rest, w)
				continue
			}
			st := s.Stats()
			if st.Received <= w.prev {
				rest = append(rest, w)
				continue
			}
			// The first new packet came about one packet time per later one before the last.
			first := st.Last.Add(-time.Duration(st.Received-w.prev-1) * 20 * time.Millisecond)
			arrived = append(arrived, ms(max(first.Sub(start), 0)))
		}
		wait = rest
		return len(obs) == len(at), false
	})
	if ctx.Err() == nil && len(obs) < len(at) {
		obs = append(obs, l.observe(time.Now(), who))
	}
	l.mu.Lock()
	l.arrival = append(l.arrival, arrived...)
	l.kept += kept
	l.late += len(wait)
	l.mu.Unlock()
	return obs
}

// watchDominant counts the changes of dominant speaker the chair's endpoint is told of.
func (l *lastnRun) watchDominant() {
	chair := l.r.bots[0]
	if !chair.connected() {
		return
	}
	sp, _ := chair.c.Speaker()
	l.mu.Lock()
	if sp.Dominant != "" && sp.Dominant != l.dominant {
		l.dominant = sp.Dominant
		l.domSeen++
	}
	l.mu.Unlock()
}

// inMeeting reports whether b's session is open (it may have failed the tester's join
// deadline and still be in the meeting, publishing).
func (b *bot) inMeeting() bool {
	if b.c == nil {
		return false
	}
	select {
	case <-b.c.Done():
		return false
	default:
		return true
	}
}

// connected reports whether b joined in time and is in the meeting now.
func (b *bot) connected() bool {
	s := b.state.Load()
	return (s == stateJoined || s == stateMedia) && b.c != nil
}

// pinnedSites are the sites the meeting pins now, as an endpoint is told: the chair's, the
// floor holders', the chair's pins.
func (l *lastnRun) pinnedSites() map[string]bool {
	sites := map[string]bool{l.r.chairSite(): true}
	for _, b := range l.r.bots {
		if !b.connected() {
			continue
		}
		if f := b.c.Floor(); f != nil {
			if f.ChairSite != "" {
				sites[f.ChairSite] = true
			}
			for _, g := range f.Speakers {
				sites[g.Site] = true
			}
		}
		sp, _ := b.c.Speaker()
		for _, s := range sp.Pinned {
			sites[s] = true
		}
		break
	}
	return sites
}

// observation is one subscriber's delivery at one sample, per kind (audio, video): the
// sources received, those it may not receive, those expected and missing, and how many
// more than the bound it received.
type observation struct {
	at                  time.Time
	got, notAllowed, un [2][]*bot
	excess, bound       [2]int
}

// observe compares, for every connected subscriber, what it receives now with what Last-N
// says it should (see the top of this file); who is the turn's talker (nil: none).
func (l *lastnRun) observe(now time.Time, who *bot) map[*bot]observation {
	cfg := l.r.cfg
	pinnedSites := l.pinnedSites()
	var pubs, pinned []*bot
	for _, p := range l.r.bots {
		if p.inMeeting() && p.isPublishing() {
			pubs = append(pubs, p)
			if pinnedSites[p.site.ID] {
				pinned = append(pinned, p)
			}
		}
	}
	l.mu.Lock()
	talked := maps.Clone(l.lastTalk)
	since := maps.Clone(l.talkSince)
	l.pinned = slices.Sorted(maps.Keys(pinnedSites))
	l.mu.Unlock()
	// The grid's head: the pinned, then the talkers, the latest first (a talker once it
	// has talked for videoSettle).
	head := slices.Clone(pinned)
	byRecent := slices.Clone(pubs)
	slices.SortStableFunc(byRecent, func(x, y *bot) int { return talked[y.idx].Compare(talked[x.idx]) })
	for _, p := range byRecent {
		if at, ok := since[p.idx]; ok && now.Sub(at) >= videoSettle && !slices.Contains(head, p) {
			head = append(head, p)
		}
	}
	head = head[:min(len(head), cfg.VideoN)]

	out := map[*bot]observation{}
	for _, b := range l.r.bots {
		if !b.connected() {
			continue
		}
		o := observation{at: now, bound: [2]int{cfg.AudioN, cfg.VideoN}}
		o.got = l.received(b, pubs, now)
		view := b.viewOf()
		var must, may [2][]*bot
		for _, p := range pinned {
			if p != b {
				must[0] = append(must[0], p)
				o.bound[0]++
			}
		}
		if who != nil && who != b && slices.Contains(pubs, who) {
			must[0] = append(must[0], who)
		}
		for _, p := range pubs {
			if _, ok := talked[p.idx]; ok || slices.Contains(pinned, p) || len(pubs) <= cfg.AudioN {
				may[0] = append(may[0], p)
			}
			if h, inView := view[p.idx]; !inView || h > 0 {
				may[1] = append(may[1], p)
			}
		}
		for _, p := range head {
			if h, inView := view[p.idx]; p != b && (!inView || h > 0) {
				must[1] = append(must[1], p)
			}
		}
		for k, has := range []bool{cfg.Media != MediaVideo, cfg.Media != MediaAudio} {
			if has {
				o.notAllowed[k] = missing(o.got[k], may[k])
				o.un[k] = missing(must[k], o.got[k])
				o.excess[k] = max(len(o.got[k])-o.bound[k], 0)
			}
		}
		out[b] = o
	}
	return out
}

// received lists the publishers whose audio and whose video b receives now (a packet
// within flowingWithin of the newest b received).
func (l *lastnRun) received(b *bot, pubs []*bot, now time.Time) [2][]*bot {
	last := map[*bot][2]time.Time{}
	newest := time.Time{}
	for _, p := range pubs {
		if p == b {
			continue
		}
		stream := p.c.Self.Streams[protocol.SourceCamera]
		var at [2]time.Time
		for k, kind := range []string{"audio", "video"} {
			if s := b.c.Stream(stream, kind); s != nil {
				st := s.Stats()
				at[k] = st.LastSent // when sent: a packet read late from a queue is not recent
				if at[k].IsZero() {
					at[k] = st.Last
				}
				if at[k].After(newest) {
					newest = at[k]
				}
			}
		}
		last[p] = at
	}
	if now.Sub(newest) > stalledAfter {
		newest = now
	}
	var got [2][]*bot
	for _, p := range pubs {
		for k := range 2 {
			if at := last[p][k]; p != b && !at.IsZero() && newest.Sub(at) < flowingWithin {
				got[k] = append(got[k], p)
			}
		}
	}
	return got
}

// judge gives a turn's verdict per subscriber from its samples: a stream is over- or
// under-delivered if it was so at every sample, and the bound exceeded by the least excess
// of any sample. first says whether this is the window's first turn: the tile layers are
// counted from its end, when the views have settled.
func (l *lastnRun) judge(obs []map[*bot]observation, first bool) {
	if len(obs) == 0 {
		return
	}
	lastObs := obs[len(obs)-1]
	var live lastnLive
	l.mu.Lock()
	defer l.mu.Unlock()
	for b, o := range lastObs {
		bad, glitch := false, false
		for k, kind := range []string{"audio", "video"} {
			notAllowed, un, excess := o.notAllowed[k], o.un[k], o.excess[k]
			for _, earlier := range obs[:len(obs)-1] {
				e, ok := earlier[b]
				if !ok {
					continue
				}
				glitch = glitch || len(e.notAllowed[k])+len(e.un[k])+e.excess[k] > 0
				notAllowed = intersect(notAllowed, e.notAllowed[k])
				un = intersect(un, e.un[k])
				excess = min(excess, e.excess[k])
			}
			glitch = glitch || len(o.notAllowed[k])+len(o.un[k])+o.excess[k] > 0
			over := max(len(notAllowed), excess)
			l.over[k] += over
			l.under[k] += len(un)
			if over > 0 || len(un) > 0 {
				bad = true
				if len(l.misses) < maxMisses {
					l.misses = append(l.misses, fmt.Sprintf("#%d at %.1f s: %s %d received (bound %d), not allowed %v, missing %v",
						b.idx, o.at.Sub(l.r.started).Seconds(), kind, len(o.got[k]), o.bound[k], indices(notAllowed), indices(un)))
				}
			}
		}
		if l.r.cfg.Media != MediaVideo {
			l.counts.audio = append(l.counts.audio, float64(len(o.got[0])))
		}
		if l.r.cfg.Media != MediaAudio {
			l.counts.video = append(l.counts.video, float64(len(o.got[1])))
		}
		live.audio, live.video = max(live.audio, len(o.got[0])), max(live.video, len(o.got[1]))
		l.samples++
		if bad {
			l.missed++
		} else if glitch {
			l.glitches++
		}
	}
	live.over, live.under = l.over[0]+l.over[1], l.under[0]+l.under[1]
	l.live = live
	if first {
		l.tileStart = l.r.layerSnapshot()
	}
}

// intersect is what of a is also in b.
func intersect(a, b []*bot) []*bot {
	var out []*bot
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// maxMisses bounds the examples of over- and under-delivery the report lists.
const maxMisses = 10

// missing is what of want is not in have.
func missing(want, have []*bot) []*bot {
	var out []*bot
	for _, w := range want {
		if !slices.Contains(have, w) {
			out = append(out, w)
		}
	}
	return out
}

func indices(bs []*bot) []int {
	out := make([]int, len(bs))
	for i, b := range bs {
		out[i] = b.idx
	}
	return out
}

// progress is the Last-N part of the progress line ("" without Last-N accounting).
func (l *lastnRun) progress() string {
	if l == nil {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.samples == 0 {
		return ""
	}
	return fmt.Sprintf(" | last-N audio ≤%d video ≤%d over %d under %d", l.live.audio, l.live.video, l.live.over, l.live.under)
}
