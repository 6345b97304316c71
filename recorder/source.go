package recorder

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"time"

	"github.com/cau-project/cau/sfu"
)

// Timing of a source's goroutine.
const (
	tickEvery = 250 * time.Millisecond
	// flushEvery bounds what a crash can lose: buffered bytes reach the kernel this often.
	flushEvery = time.Second
	// openWait is how long a new file waits for all of its source's tracks to be ready
	// (synced, video at a keyframe) before it starts with those that are.
	openWait = 4 * time.Second
	// interleaveWindow is how far apart (in media time) the tracks' queues may drift
	// before the earliest frame is written even though another track has nothing queued
	// (a muted microphone, a paused screen).
	interleaveWindow = time.Second
	// idleFlush writes out queued frames when nothing has arrived for this long.
	idleFlush = time.Second
	// trackGrace is how long a source with one kind of track waits after its last track
	// was added before opening a file: the bridge hands a camera's audio and video over
	// one at a time, and a file opened with the microphone alone would be cut as soon as
	// the camera came (Matroska cannot add a track).
	trackGrace = 2 * time.Second
)

// slowClose, set by a test, runs before a file is finished: a disk slow to sync.
var slowClose func()

// tapDepth is each tap's pool: 512 packets (0.75 MB) absorb 1–3 s of a stalled disk.
const tapDepth = 512

// maxTracks bounds the tracks of one source (camera, microphone, and some spare).
const maxTracks = 4

// source records one stream group into its files, one part at a time. Everything below
// the channels is owned by its goroutine (run).
type source struct {
	name string // safe for a file name
	site string
	rec  *Recording
	log  *slog.Logger
	in   chan *sfu.TapPacket
	ctl  chan func()
	done chan struct{}

	tracks   []*track
	part     *partFile
	partNo   int
	partInfo File
	partSet  []*track // the open part's tracks, by track number − 1
	baseMs   int64    // sender wall ms of the part's first frame
	firstMs  int64
	lastMs   int64
	flushed  time.Time
	added    time.Time // when the last track was added
	stopping bool
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func newSource(rec *Recording, name, site string) *source {
	s := &source{
		name: unsafeName.ReplaceAllString(name, "_"), site: site, rec: rec,
		log: rec.log.With("source", name),
		in:  make(chan *sfu.TapPacket, tapDepth*maxTracks), ctl: make(chan func(), 16),
		done: make(chan struct{}),
	}
	go s.run()
	return s
}

// run is the source's goroutine: packets from its taps, commands, and a ticker.
func (s *source) run() {
	defer close(s.done)
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	for !s.stopping {
		select {
		case p := <-s.in:
			s.packet(p)
		case fn := <-s.ctl:
			fn()
		case now := <-tick.C:
			s.tick(now)
		}
	}
}

// packet routes a tapped packet to its track. The packet goes back to its pool at once:
// the track keeps its own copy of what it needs.
func (s *source) packet(p *sfu.TapPacket) {
	var t *track
	for _, x := range s.tracks {
		if x.tap == p.Tap && !x.ended {
			t = x
			break
		}
	}
	if t == nil {
		p.Release()
		return
	}
	at := p.At
	if cut := s.rec.stopAt.Load(); cut != 0 && at.UnixNano() > cut {
		p.Release() // read after Stop: not part of the recording
		return
	}
	if p.RTCP {
		t.rtcp(p.Data(), at)
		p.Release()
		return
	}
	data := append([]byte(nil), p.Data()...)
	p.Release()
	t.rtp(data, at)
	s.progress(at)
}

// progress opens, rotates and feeds the part after new frames arrived.
func (s *source) progress(now time.Time) {
	if s.part == nil {
		s.maybeOpen(now, false)
	} else if s.joinable() {
		// A track became ready that the open part lacks (a late camera): the next part
		// has it. Matroska cannot add a track to a file already started.
		s.rotate(now)
	}
	if s.part != nil {
		s.interleave(false)
	}
}

// joinable reports whether a ready track is missing from the open part.
func (s *source) joinable() bool {
	for _, t := range s.tracks {
		if t.inPart < 0 && t.ready() {
			return true
		}
	}
	return false
}

// maybeOpen starts a part when every live track is ready, or (force, or openWait after
// the first packet) with those that are.
func (s *source) maybeOpen(now time.Time, force bool) {
	var ready []*track
	waiting := false
	var first time.Time
	kinds := map[bool]bool{}
	for _, t := range s.tracks {
		if t.ended {
			continue
		}
		kinds[t.codec.video] = true
		if t.ready() {
			ready = append(ready, t)
		} else {
			waiting = true
		}
		if !t.firstAt.IsZero() && (first.IsZero() || t.firstAt.Before(first)) {
			first = t.firstAt
		}
	}
	if len(ready) == 0 || (waiting && !force && now.Sub(first) < openWait) {
		return
	}
	if !force && len(kinds) < 2 && now.Sub(s.added) < trackGrace {
		return // the other kind may be on its way
	}
	s.open(ready, now)
}

// open starts the next part with tracks (each ready).
func (s *source) open(tracks []*track, now time.Time) {
	s.partNo++
	ext := ".webm"
	specs := make([]trackSpec, len(tracks))
	for i, t := range tracks {
		specs[i] = t.spec()
		if !t.codec.webm {
			ext = ".mkv"
		}
	}
	name := fmt.Sprintf("%s-%d%s", s.name, s.partNo, ext)
	p, err := openPart(filepath.Join(s.rec.dir, name), name, specs, s.log)
	if err != nil {
		s.log.Error("recorder: cannot open file", "file", name, "err", err)
		s.rec.fileFailed(name, err)
		for _, t := range tracks {
			t.queue = nil
		}
		return
	}
	s.part, s.partSet = p, tracks
	for i, t := range tracks {
		t.inPart, t.wroteAny = i, false
		if t.tap != nil {
			t.dropped0 = t.tap.Dropped()
		}
		t.info = TrackInfo{Kind: t.kind, Codec: t.codec.mime, Width: t.width, Height: t.height}
	}
	// The file starts at its first frame (the interleaver writes the earliest first);
	// its start time is known then.
	s.baseMs, s.firstMs, s.lastMs = -1, -1, -1
	s.flushed = now
	s.partInfo = File{Name: name, Source: s.name, Site: s.site, Part: s.partNo, Start: now} // until the first frame
	s.log.Info("recorder: file started", "file", name, "tracks", len(tracks))
}

// localTime converts a sender wall time to this server's clock with the source's offset
// estimate (audio and video of a source share a sender clock).
func (s *source) localTime(ns int64) time.Time {
	for _, t := range s.partSet {
		if t.clock.haveOff {
			return time.Unix(0, ns+t.clock.offsetNs)
		}
	}
	return time.Unix(0, ns)
}

// interleave writes queued frames in time order across the part's tracks: the earliest
// first, once every live track of the part has something queued or the queues span more
// than interleaveWindow. all writes everything (stop, idle).
func (s *source) interleave(all bool) {
	for {
		var best *track
		var newest int64
		empty := false
		for _, t := range s.partSet {
			if len(t.queue) == 0 {
				if !t.ended {
					empty = true
				}
				continue
			}
			if best == nil || t.queue[0].ns < best.queue[0].ns {
				best = t
			}
			newest = max(newest, t.queue[len(t.queue)-1].ns)
		}
		if best == nil {
			return
		}
		if empty && !all && newest-best.queue[0].ns < int64(interleaveWindow) {
			return
		}
		f := best.queue[0]
		best.queue[0] = frame{}
		best.queue = best.queue[1:]
		s.writeFrame(best, f)
	}
}

// writeFrame appends f to the open part.
func (s *source) writeFrame(t *track, f frame) {
	if s.baseMs < 0 {
		s.baseMs = f.ns / 1e6
		s.partInfo.Start = s.localTime(f.ns)
		defer s.rec.fileUpdate(s.fileInfo(false, ""))
	}
	ms := f.ns/1e6 - s.baseMs
	if ms < 0 {
		return // before the part's start: only possible for a late-placed frame
	}
	if t.wroteAny && ms <= t.lastMs {
		// Strictly increasing per track: two frames at one time make players stumble.
		// The clock slews rather than steps back, so this is rare: log it.
		if t.codec.video {
			s.log.Warn("recorder: video frame not after the previous one", "file", s.part.name,
				"behind_ms", t.lastMs-ms, "sync", t.syncMode(), "reanchors", t.clock.reanchors)
		}
		ms = t.lastMs + 1
	}
	if err := s.part.write(t.inPart, f.key, ms, f.data); err != nil {
		s.log.Error("recorder: write failed; closing the file", "file", s.part.name, "err", err)
		s.closePart(err)
		return
	}
	t.lastMs, t.wroteAny = ms, true
	t.info.Frames++
	if f.key && t.codec.video {
		t.info.Keyframes++
	}
	if s.firstMs < 0 {
		s.firstMs = ms
	}
	s.lastMs = max(s.lastMs, ms)
}

// fileInfo describes the open part for the manifest.
func (s *source) fileInfo(complete bool, errText string) File {
	fi := s.partInfo
	fi.Complete, fi.Error = complete, errText
	if s.firstMs >= 0 {
		fi.DurationMs = s.lastMs - s.firstMs
	}
	fi.OffsetMs = fi.Start.Sub(s.rec.started).Milliseconds()
	fi.Tracks = make([]TrackInfo, len(s.partSet))
	for i, t := range s.partSet {
		ti := t.info
		ti.Sync = t.syncMode()
		ti.Width, ti.Height = max(ti.Width, t.width), max(ti.Height, t.height)
		if t.tap != nil {
			ti.PacketsDropped = t.tap.Dropped() - t.dropped0
		}
		fi.Tracks[i] = ti
	}
	return fi
}

// closePart finishes the open part (after writing what is queued, unless it failed).
func (s *source) closePart(failure error) {
	if s.part == nil {
		return
	}
	p := s.part
	if failure == nil {
		s.interleave(true)
		failure = p.failed
	}
	s.part = nil
	if slowClose != nil {
		slowClose()
	}
	err := p.close()
	if failure == nil {
		failure = err
	}
	errText := ""
	if failure != nil {
		errText = failure.Error()
	}
	s.rec.fileUpdate(s.fileInfo(failure == nil, errText))
	s.log.Info("recorder: file finished", "file", p.name, "ms", s.lastMs-s.firstMs, "err", failure)
	for _, t := range s.partSet {
		t.inPart = -1
		if t.codec.video {
			t.waitKey = true // the next part starts at a keyframe
		}
	}
	s.partSet = nil
}

// rotate closes the open part and opens the next with every ready track.
func (s *source) rotate(now time.Time) {
	s.closePart(nil)
	for _, t := range s.tracks {
		// Frames of a video track continuing into the new part are useless until its
		// next keyframe; drop them and ask for one.
		if t.codec.video && !t.ended && !t.ready() {
			t.queue = nil
			t.askKeyframe(now)
		}
	}
	s.maybeOpen(now, true)
}

// tick runs every tickEvery: flushes the file, re-asks for keyframes, falls back to
// arrival times for tracks without sender reports, opens late parts.
func (s *source) tick(now time.Time) {
	for _, t := range s.tracks {
		if t.ended {
			continue
		}
		if t.waitKey && t.haveSSRC {
			t.askKeyframe(now)
		}
	}
	if s.part == nil {
		s.maybeOpen(now, false)
	}
	if s.part == nil {
		return
	}
	idle := true
	for _, t := range s.partSet {
		if now.Sub(t.lastFrame) < idleFlush {
			idle = false
		}
	}
	s.interleave(idle)
	if now.Sub(s.flushed) >= flushEvery {
		s.flushed = now
		if err := s.part.w.Flush(); err != nil {
			s.log.Error("recorder: flush failed; closing the file", "file", s.part.name, "err", err)
			s.closePart(err)
		}
	}
}

// addTrack starts recording t (on the source goroutine).
func (s *source) addTrack(t *track) error {
	live := 0
	for _, x := range s.tracks {
		if !x.ended {
			live++
		}
	}
	if live >= maxTracks {
		return fmt.Errorf("source %s: more than %d tracks", s.name, maxTracks)
	}
	s.tracks = append(s.tracks, t)
	s.added = time.Now()
	return nil
}

// endTrack stops recording t: what it has queued is written, and the part closes when
// no live track is left in it.
func (s *source) endTrack(t *track) {
	if t.ended {
		return
	}
	t.sb.Flush()
	for smp := t.sb.Pop(); smp != nil; smp = t.sb.Pop() {
		t.sample(smp.Data, smp.PacketTimestamp, smp.RTPHeaders, time.Now())
	}
	t.ended = true
	if t.tap != nil {
		t.tap.Close()
	}
	if s.part != nil && t.inPart >= 0 {
		s.interleave(false)
		live := false
		for _, x := range s.partSet {
			if !x.ended {
				live = true
			}
		}
		if !live {
			s.closePart(nil)
		}
	}
}

// stop ends every track, closes the part and ends the goroutine.
func (s *source) stop() {
	for _, t := range s.tracks {
		if t.tap != nil {
			t.tap.Close()
		}
	}
	// Packets already queued are recorded: they were received before the stop.
	for {
		select {
		case p := <-s.in:
			s.packet(p)
			continue
		default:
		}
		break
	}
	for _, t := range s.tracks {
		if !t.ended {
			t.sb.Flush()
			for smp := t.sb.Pop(); smp != nil; smp = t.sb.Pop() {
				t.sample(smp.Data, smp.PacketTimestamp, smp.RTPHeaders, time.Now())
			}
		}
	}
	if s.part == nil {
		s.maybeOpen(time.Now(), true)
	}
	if s.part == nil && s.partNo == 0 {
		for _, t := range s.tracks {
			var delivered, dropped uint64
			if t.tap != nil {
				delivered, dropped = t.tap.Delivered(), t.tap.Dropped()
			}
			s.log.Warn("recorder: source stopped before any file started", "kind", t.kind,
				"packets", delivered, "dropped", dropped, "synced", t.clock.synced, "queued", len(t.queue),
				"held", len(t.unsynced), "waiting_keyframe", t.waitKey)
		}
	}
	s.closePart(nil)
	for _, t := range s.tracks {
		t.ended = true
	}
	s.stopping = true
}
