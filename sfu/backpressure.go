package sfu

import "time"

// maxLag is how far behind real time the reader may fall before a video track skips to
// its next keyframe. When the bridge is overloaded (or a burst of joins takes its CPU),
// packets wait in pion's receive buffer; forwarding them late only makes every
// subscriber's picture late. Dropping whole frames until a keyframe, with the
// subscribers' numbering kept continuous, trades a short freeze for staying live.
//
// Lag measured from timestamps also shows a publisher's own delay (a jitter spike, a
// bloated uplink buffer), which skipping would not cure. So a skip needs both: packets
// late by maxLag for lagPersist, and a reader that has not had to wait for a packet for
// as long (every read found one already queued: the backlog is here).
const (
	maxLag     = 150 * time.Millisecond
	lagPersist = 300 * time.Millisecond
	// readWaited is a read that took long enough to have waited for its packet rather
	// than found it queued.
	readWaited = 100 * time.Microsecond
)

// lagMeter estimates how late the reader handles a track's packets: a packet's transit
// (when the reader got it − its RTP timestamp) above the least transit seen in the last
// two to four seconds. Network jitter shows in it too, which is why the bound is loose.
// Reader goroutine only.
type lagMeter struct {
	clockPerSec int64
	started     bool
	base        time.Time // the first packet's read time: keeps the arithmetic in range
	window      time.Time // when the current window started
	minCur      uint32    // least transit in the current window (RTP units)
	minPrev     uint32    // and in the one before
}

// observe returns the lag of a packet with timestamp ts read at now.
func (m *lagMeter) observe(ts uint32, now time.Time) time.Duration {
	if m.clockPerSec <= 0 {
		return 0
	}
	if !m.started {
		m.started, m.base, m.window = true, now, now
		m.minCur = uint32(0) - ts
		m.minPrev = m.minCur
		return 0
	}
	rel := now.Sub(m.base).Microseconds()
	transit := uint32(rel*m.clockPerSec/1e6) - ts // wraps consistently with ts
	if now.Sub(m.window) > 2*time.Second {
		m.window, m.minPrev, m.minCur = now, m.minCur, transit
	}
	if int32(transit-m.minCur) < 0 {
		m.minCur = transit
	}
	least := m.minCur
	if int32(m.minPrev-least) < 0 {
		least = m.minPrev
	}
	lag := int64(int32(transit - least))
	return time.Duration(lag * int64(time.Second) / m.clockPerSec)
}

// admit decides whether the reader forwards a video packet, at frame boundaries only:
// a late delta frame starts a skip (and a keyframe request), the next keyframe ends it.
// Audio is never skipped (it is small, and the ear minds gaps more than the eye), nor
// is a frame whose first packet was forwarded (no subscriber gets half a frame).
//
// A track whose Last-N gate g is shut (lastn.go) is skipped the same way, from the next
// frame start until a keyframe after the gate opens again.
// Reader goroutine only; downs are idle (no fan-out is running).
func (t *UpTrack) admit(seq uint16, ts uint32, keyframe bool, now time.Time, downs []*DownTrack, g *gate) bool {
	if t.codecK == codecOther {
		return t.admitGated(seq, downs, g)
	}
	late := t.lag.observe(ts, now) > maxLag
	if !late {
		t.lateSince = time.Time{}
	} else if t.lateSince.IsZero() {
		t.lateSince = now
	}
	frameStart := !t.haveTS || ts != t.lastTS
	t.haveTS, t.lastTS = true, ts
	if frameStart {
		t.paused = g != nil && !g.on.Load()
		switch {
		case t.paused:
			t.skipping = true // until a keyframe once selected again
		case keyframe && t.skipping:
			t.resume(seq, downs)
		case !keyframe && !t.skipping && late && now.Sub(t.lateSince) >= lagPersist &&
			now.Sub(t.lastWait) >= lagPersist:
			t.skipping = true
			t.skips.Add(1)
			t.log.Debug("reader behind: skipping to the next keyframe", "late_for", now.Sub(t.lateSince))
			t.RequestKeyframe()
		case t.skipping:
			// Ask again at every skipped frame (RequestKeyframe throttles): a lost PLI, or
			// one the publisher ignored, must not leave every subscriber frozen.
			t.RequestKeyframe()
		}
	}
	if t.skipping {
		t.skipped++
		return false
	}
	return true
}

// admitGated is admit for audio (and codecs without keyframe detection): only the Last-N
// gate stops a packet, and each subscriber's numbering closes over the pause when it
// opens again.
func (t *UpTrack) admitGated(seq uint16, downs []*DownTrack, g *gate) bool {
	t.paused = g != nil && !g.on.Load()
	if t.paused {
		t.skipping = true
		t.skipped++
		return false
	}
	if t.skipping {
		t.resume(seq, downs)
	}
	return true
}

// resume ends a skip at a keyframe: each subscriber's sequence numbers continue without
// a gap (it would NACK a gap, for frames it no longer needs), while timestamps keep the
// real time that passed. A NACK for a packet from before the skip is not answered.
func (t *UpTrack) resume(seq uint16, downs []*DownTrack) {
	for _, d := range downs {
		if d.slot != nil {
			d.slot.skipped(d, seq, t.skipped)
			continue
		}
		if d.sim != nil {
			d.skippedLayer(t, seq)
			continue
		}
		d.seqOffset -= t.skipped
		if d.started {
			d.firstInSeq = seq
			d.mapping.Store(newSeqMapping(seq, d.seqOffset, d.tsOffset))
		}
	}
	t.skipping, t.skipped = false, 0
}
