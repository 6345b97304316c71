// Package videowatch records the VP8 packets a receiver gets from a bridge and tells,
// afterwards, what a viewer would have seen: which frames were complete and decodable,
// when each was shown, how long the picture froze, at what resolution it played, and
// where the bridge switched simulcast layers and whether each switch started on a
// keyframe. Tests and benchmarks of adaptive forwarding use it on a pion receiver, where
// no decoder reports freezes as a browser does.
//
// The decoder model: a frame is complete when every packet from its first (S bit,
// partition 0) to its last (marker) arrived, repairs included, at the arrival of the last
// of them. A keyframe that is complete is decodable; a delta frame is decodable when it is
// complete and what it refers to was decoded: with temporal layers (TL0PICIDX and TID
// present), a base-layer frame needs the previous base-layer frame, an upper-layer frame
// its base-layer frame; without them, a frame needs the previous picture id. A base-layer
// frame that is lost or incomplete breaks the chain until the next keyframe. A decodable
// frame is shown when it completes, never before the frame shown before it.
//
// A layer switch shows as a jump in the VP8 picture ids: each simulcast encoding numbers
// its pictures apart, and the bridge rewrites sequence numbers and timestamps but not
// picture ids. A jump that whole frames lost on the way explain (as many missing packets
// as missing pictures, at least) is loss, not a switch.
package videowatch

import (
	"sort"
	"sync"
	"time"
)

// FreezeMin is the shortest interval between two shown frames that counts as a freeze:
// about Chromium's threshold (three frame intervals, and at least 150 ms more than one)
// at 20–30 frames a second.
const FreezeMin = 200 * time.Millisecond

type packet struct {
	at     time.Time
	seq    uint16
	ts     uint32
	marker bool
	d      vp8Desc
}

// Recorder keeps the packets of one received VP8 stream. Add may be called from the
// track's reader while Analyze runs on another goroutine.
type Recorder struct {
	mu      sync.Mutex
	pkts    []packet  // in arrival order; guarded by mu
	keyW    int       // the last keyframe's width; guarded by mu
	keyAt   time.Time // and when it arrived
	lastPID uint16    // the picture id of the last packet; guarded by mu
}

// Add records one packet as it arrives. It keeps nothing of payload.
func (r *Recorder) Add(at time.Time, seq uint16, ts uint32, marker bool, payload []byte) {
	p := packet{at: at, seq: seq, ts: ts, marker: marker, d: parseVP8(payload)}
	r.mu.Lock()
	r.pkts = append(r.pkts, p)
	if p.d.key && p.d.width > 0 {
		r.keyW, r.keyAt = p.d.width, at
	}
	if p.d.hasPID {
		r.lastPID = p.d.pid
	}
	r.mu.Unlock()
}

// LastKeyframe is the width of the last keyframe received and when it came (0 before
// the first).
func (r *Recorder) LastKeyframe() (width int, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.keyW, r.keyAt
}

// LastPID is the picture id of the last packet received.
func (r *Recorder) LastPID() uint16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastPID
}

// Packets is how many packets were recorded so far.
func (r *Recorder) Packets() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pkts)
}

// Frame is one picture as received.
type Frame struct {
	TS         uint32
	Start, End int64 // extended sequence numbers of the first and the marker packet; -1 if not received
	minSeq     int64
	maxSeq     int64
	count      int64
	First      time.Time // first packet's arrival
	Done       time.Time // last packet's arrival (the completion time of a complete frame)
	Complete   bool
	Key        bool
	Width      int // a keyframe's size
	Height     int
	PID        uint16
	HasPID     bool
	TL0, TID   uint8
	HasTL      bool
	Decodable  bool
	Shown      time.Time // zero if never shown
	ShownW     int       // the resolution it was shown at (the last decoded keyframe's)
	ShownH     int
}

// Switch is a layer switch seen in the stream.
type Switch struct {
	At time.Time // the first packet of the new layer's first frame
	// Known: the new layer's first frame has its first packet; Key: that frame is a
	// keyframe (meaningful when Known).
	Known, Key bool
	// Width and PrevWidth are the keyframe widths of the new layer and of the one left
	// (0 when not seen).
	Width, PrevWidth int
	// Resume: the jump is a short one forward, the same encoding resumed after the bridge
	// held frames back (an overload skip closes the numbering over them), not another
	// layer (encodings number their pictures from unrelated random starts).
	Resume bool
}

// resumeJump bounds the picture-id jump of a resume: four seconds at 30 frames a second.
const resumeJump = 120

// Report is what a viewer saw between two instants.
type Report struct {
	Frames   []*Frame // every frame received, in sequence order
	Switches []Switch // every switch in the whole recording
	// Over the window: frames shown, the longest interval without a new frame (edges of
	// the window included) and where it began, the sum of intervals of FreezeMin or more,
	// and the mean height and width of the frames shown.
	Shown                 int
	MaxFreeze             time.Duration
	MaxFreezeAt           time.Time
	Frozen                time.Duration
	Freezes               int
	MeanHeight, MeanWidth float64
}

// Analyze models the viewer over the whole recording and reports on [from, to].
func (r *Recorder) Analyze(from, to time.Time) Report {
	r.mu.Lock()
	pkts := append([]packet(nil), r.pkts...)
	r.mu.Unlock()
	frames := assemble(pkts)
	rep := Report{Frames: frames, Switches: switches(frames)}
	decode(frames)
	rep.window(from, to)
	return rep
}

// Stalled is how long the viewer has waited for a frame it can show while packets kept
// arriving: from the last frame shown to the last packet received (0 before the first
// packet). A receiver asks for a keyframe when it grows, as a browser's decoder does.
func (r *Recorder) Stalled() time.Duration {
	r.mu.Lock()
	pkts := append([]packet(nil), r.pkts...)
	r.mu.Unlock()
	if len(pkts) == 0 {
		return 0
	}
	frames := assemble(pkts)
	decode(frames)
	var shown, last time.Time
	for _, f := range frames {
		if f.Shown.After(shown) {
			shown = f.Shown
		}
		if f.Done.After(last) {
			last = f.Done
		}
	}
	if shown.IsZero() {
		return last.Sub(pkts[0].at)
	}
	return max(last.Sub(shown), 0)
}

// assemble groups the packets into frames by timestamp, first copy of each packet only.
func assemble(pkts []packet) []*Frame {
	byTS := map[uint32]*Frame{}
	seen := map[int64]bool{}
	var frames []*Frame
	var last int64
	for i, p := range pkts {
		ext := int64(p.seq)
		if i > 0 {
			ext = last + int64(int16(p.seq-uint16(last)))
		}
		if ext > last || i == 0 {
			last = ext
		}
		if seen[ext] || p.d.malformed {
			continue
		}
		seen[ext] = true
		f := byTS[p.ts]
		if f == nil {
			f = &Frame{TS: p.ts, Start: -1, End: -1, minSeq: ext, maxSeq: ext, First: p.at}
			byTS[p.ts] = f
			frames = append(frames, f)
		}
		f.count++
		f.minSeq, f.maxSeq = min(f.minSeq, ext), max(f.maxSeq, ext)
		if p.at.After(f.Done) {
			f.Done = p.at
		}
		if p.d.hasPID {
			f.HasPID, f.PID = true, p.d.pid
		}
		if p.d.hasTL0 && p.d.hasTID {
			f.HasTL, f.TL0, f.TID = true, p.d.tl0, p.d.tid
		}
		if p.d.start {
			f.Start, f.Key, f.Width, f.Height = ext, p.d.key, p.d.width, p.d.height
		}
		if p.marker {
			f.End = ext
		}
	}
	for _, f := range frames {
		f.Complete = f.Start >= 0 && f.End >= f.Start && f.count == f.End-f.Start+1
	}
	sort.Slice(frames, func(i, j int) bool { return frames[i].minSeq < frames[j].minSeq })
	return frames
}

// switches finds the jumps in picture ids that loss does not explain.
func switches(frames []*Frame) []Switch {
	var out []Switch
	var prev *Frame
	width := 0
	for _, f := range frames {
		if !f.HasPID {
			continue
		}
		if prev != nil {
			jump := int64((f.PID - prev.PID) & 0x7fff) // pictures ahead, 1 when none is missing
			missingPackets := f.minSeq - prev.maxSeq - 1
			lostOnTheWay := jump > 1 && jump-1 <= missingPackets && jump < 64 // whole frames lost
			if jump != 1 && !lostOnTheWay {
				s := Switch{At: f.First, Known: f.Start >= 0 && f.Start == f.minSeq, Key: f.Key, PrevWidth: width,
					Resume: jump > 1 && jump < resumeJump}
				if f.Key {
					s.Width = f.Width
				}
				out = append(out, s)
			}
		}
		if f.Key && f.Width > 0 {
			width = f.Width
		}
		prev = f
	}
	return out
}

// decode runs the decoder model over the frames, in order.
func decode(frames []*Frame) {
	ok := false
	var base uint8
	var lastPID uint16
	var shown time.Time
	w, h := 0, 0
	for _, f := range frames {
		if !f.Complete {
			if !f.HasTL || f.TID == 0 {
				ok = false // the chain the next frames refer to is broken
			}
			continue
		}
		switch {
		case f.Key:
			ok = true
			if f.Width > 0 {
				w, h = f.Width, f.Height
			}
		case !ok:
			continue
		case f.HasTL && f.TID == 0:
			if f.TL0 != base+1 {
				ok = false // a base-layer frame went missing whole
				continue
			}
		case f.HasTL:
			if f.TL0 != base {
				continue // its base-layer frame is missing; the next base frame tells
			}
		case f.HasPID:
			if f.PID != (lastPID+1)&0x7fff {
				ok = false
				continue
			}
		}
		f.Decodable = true
		if f.HasTL {
			base = f.TL0
		}
		lastPID = f.PID
		f.Shown = f.Done
		if f.Shown.Before(shown) {
			f.Shown = shown
		}
		shown = f.Shown
		f.ShownW, f.ShownH = w, h
	}
}

// window fills the report's figures over [from, to].
func (rep *Report) window(from, to time.Time) {
	var shown []*Frame
	for _, f := range rep.Frames {
		if f.Decodable && !f.Shown.Before(from) && !f.Shown.After(to) {
			shown = append(shown, f)
		}
	}
	sort.SliceStable(shown, func(i, j int) bool { return shown[i].Shown.Before(shown[j].Shown) })
	rep.Shown = len(shown)
	prev := from
	gap := func(at time.Time) {
		d := at.Sub(prev)
		if d > rep.MaxFreeze {
			rep.MaxFreeze, rep.MaxFreezeAt = d, prev
		}
		if d >= FreezeMin {
			rep.Frozen += d
			rep.Freezes++
		}
		prev = at
	}
	var sumW, sumH float64
	for _, f := range shown {
		gap(f.Shown)
		sumW += float64(f.ShownW)
		sumH += float64(f.ShownH)
	}
	gap(to)
	if len(shown) > 0 {
		rep.MeanWidth, rep.MeanHeight = sumW/float64(len(shown)), sumH/float64(len(shown))
	}
}
