package recorder

import "time"

// ntpEpochOffset is the number of seconds from 1900 (NTP) to 1970 (Unix).
const ntpEpochOffset = 2208988800

// ntpToUnixNano converts a 64-bit NTP timestamp (32.32 seconds since 1900) to Unix ns.
func ntpToUnixNano(ntp uint64) int64 {
	secs := int64(ntp>>32) - ntpEpochOffset
	frac := (ntp & 0xFFFFFFFF) * 1e9 >> 32
	return secs*1e9 + int64(frac)
}

// unwrapper extends 32-bit RTP timestamps to 64 bits, assuming consecutive values are
// less than half the range apart (2^31 ticks: 12 h of video, 12 h of Opus).
type unwrapper struct {
	last  int64
	valid bool
}

func (u *unwrapper) extend(ts uint32) int64 {
	if !u.valid {
		u.last, u.valid = int64(ts), true
		return u.last
	}
	u.last += int64(int32(ts - uint32(u.last)))
	return u.last
}

// peek extends ts like extend without moving the reference.
func (u *unwrapper) peek(ts uint32) int64 {
	if !u.valid {
		return int64(ts)
	}
	return u.last + int64(int32(ts-uint32(u.last)))
}

// senderClock maps a track's RTP timestamps to its publisher's wall clock, using the
// publisher's RTCP sender reports (RFC 3550 §6.4.1: an SR pairs an RTP timestamp with the
// NTP time it was sampled at). The audio and video of one publisher share that wall
// clock, so frames mapped through it line up whatever their RTP offsets. Owned by the
// source goroutine.
//
// A sender extrapolates an SR's RTP time from its last packet's send time, so a sender
// that runs late (a busy machine) reports a pair that places media too late. Of the
// recent reports the clock follows the least late one: it re-anchors only when that one
// disagrees with the mapping by more than reanchorAbove, which also follows a real drift
// between the RTP clock and the wall clock (an audio device's clock) once the reports
// that contradict it have left the window.
type senderClock struct {
	rate     int64 // RTP clock rate, Hz
	ts       unwrapper
	synced   bool
	fallback bool  // no sender report came in time: anchored on arrival times instead
	anchorTS int64 // extended RTP timestamp of the anchor
	anchorNs int64 // sender wall time of the anchor, Unix ns
	recent   [srWindow]srPoint
	nRecent  int
	// slew is a backward correction still to apply, a little per frame (see place):
	// stepping back at once would squeeze frames together, which players reject.
	slew int64
	// offsetNs estimates local − sender wall clock: the smallest (arrival − NTP) seen
	// over sender reports, i.e. the sender's clock offset plus the least transit delay.
	offsetNs  int64
	haveOff   bool
	reanchors int
}

// srPoint is one sender report: extended RTP time and sender wall time.
type srPoint struct{ ext, ns int64 }

// srWindow is how many recent reports the clock weighs (about 16 s for browsers).
const srWindow = 16

// reanchorAbove is the disagreement between the mapping and the least late recent
// report past which the clock re-anchors; below it, moving would only shake timestamps.
const reanchorAbove = 10 * time.Millisecond

// senderReport applies an SR (its NTP time, RTP time) that arrived at local time at.
func (c *senderClock) senderReport(ntp uint64, rtpTime uint32, at time.Time) {
	srNs := ntpToUnixNano(ntp)
	if off := at.UnixNano() - srNs; !c.haveOff || off < c.offsetNs {
		c.offsetNs, c.haveOff = off, true
	}
	if c.fallback {
		return // the track's frames are already placed on arrival times; stay consistent
	}
	p := srPoint{ext: c.ts.peek(rtpTime), ns: srNs}
	c.recent[c.nRecent%srWindow] = p
	c.nRecent++
	if !c.synced {
		c.anchorTS, c.anchorNs, c.synced = p.ext, p.ns, true
		return
	}
	least := int64(0)
	for i, q := range c.recent[:min(c.nRecent, srWindow)] {
		if d := q.ns - (c.unixNano(q.ext) + c.slew); i == 0 || d < least {
			least = d
		}
	}
	switch {
	case least > int64(reanchorAbove):
		c.anchorNs += least // later: a gap between two frames, harmless
		c.reanchors++
	case least < -int64(reanchorAbove):
		c.slew += least
		c.reanchors++
	}
}

// slewStep is the most a backward correction moves the mapping per frame: a 30 fps
// frame interval shrinks from 33 to 31 ms, a 20 ms audio frame to 18 ms.
const slewStep = int64(2 * time.Millisecond)

// place maps a frame's extended RTP timestamp like unixNano, applying a step of any
// pending backward correction first. Called once per frame, in order.
func (c *senderClock) place(ext int64) int64 {
	if c.slew < 0 {
		step := max(c.slew, -slewStep)
		c.anchorNs += step
		c.slew -= step
	}
	return c.unixNano(ext)
}

// anchorOnArrival places the track on the local clock by the arrival of a packet with
// RTP time ts: for publishers that send no sender reports.
func (c *senderClock) anchorOnArrival(ts uint32, at time.Time) {
	c.anchorTS, c.anchorNs = c.ts.peek(ts), at.UnixNano()
	c.synced, c.fallback = true, true
	c.offsetNs, c.haveOff = 0, true
}

// unixNano is the sender wall time of extended RTP timestamp ext; the clock must be synced.
func (c *senderClock) unixNano(ext int64) int64 {
	return c.anchorNs + (ext-c.anchorTS)*1e9/c.rate
}
