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
type senderClock struct {
	rate     int64 // RTP clock rate, Hz
	ts       unwrapper
	synced   bool
	fallback bool  // no sender report came in time: anchored on arrival times instead
	anchorTS int64 // extended RTP timestamp of the anchor
	anchorNs int64 // sender wall time of the anchor, Unix ns
	// offsetNs estimates local − sender wall clock: the smallest (arrival − NTP) seen
	// over sender reports, i.e. the sender's clock offset plus the least transit delay.
	offsetNs  int64
	haveOff   bool
	reanchors int
}

// reanchorAbove is the drift between the anchored mapping and a new sender report past
// which the clock re-anchors. Below it, a report's own jitter (the sender extrapolates
// its RTP time to the report's send time) would only shake the timestamps.
const reanchorAbove = 15 * time.Millisecond

// senderReport applies an SR (its NTP time, RTP time) that arrived at local time at.
func (c *senderClock) senderReport(ntp uint64, rtpTime uint32, at time.Time) {
	srNs := ntpToUnixNano(ntp)
	if off := at.UnixNano() - srNs; !c.haveOff || off < c.offsetNs {
		c.offsetNs, c.haveOff = off, true
	}
	ext := c.ts.peek(rtpTime)
	if c.fallback {
		return // the track's frames are already placed on arrival times; stay consistent
	}
	if c.synced {
		drift := srNs - c.unixNano(ext)
		if drift < 0 {
			drift = -drift
		}
		if drift < int64(reanchorAbove) {
			return
		}
		c.reanchors++
	}
	c.anchorTS, c.anchorNs, c.synced = ext, srNs, true
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
