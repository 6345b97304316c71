package sfu

import (
	"runtime/debug"
	"sync"
	"time"
)

// After a meeting the runtime keeps what the meeting grew: the egress batches its
// fan-outs allocated (up to maxBatches of ~110 KB per shard and socket, kept for the next
// burst), and the heap's free pages, which the runtime's background scavenger returns to
// the OS a few MB at a time over minutes and not below about 10% over the heap goal. A
// bridge after a 258-endpoint join storm pair held 67 MB of RSS against 30 MB before it
// with nobody connected (issue 11: "memory returns to its baseline after a meeting
// ends"). So when the bridge's last peer leaves and none joins for idleRelease, it drops
// the spare batches and returns the free heap at once (debug.FreeOSMemory: one forced
// collection and a full scavenge). An idle heap is a few MB: the collection takes a few
// ms of one core, once per meeting's end, when the bridge has nothing else to do.
// Back-to-back meetings (the next one joining before idleRelease) keep everything.

// idleRelease is how long a bridge waits with no peers before it returns its memory:
// longer than the gap between two back-to-back meetings' leaves and joins, short enough
// that an operator watching RSS sees it come back.
const idleRelease = 10 * time.Second

// idleState counts the bridge's open peers and schedules the release. mu guards every
// field.
type idleState struct {
	mu       sync.Mutex
	peers    int
	gen      uint64        // bumped by every peer opened or closed: a timer of an older gen is stale
	timer    *time.Timer   // pending release, nil if none
	wait     time.Duration // idleRelease unless a test set it (before the first peer)
	closed   bool
	releases int // releases done, for tests
}

// peerOpened counts a new peer and cancels a pending release.
func (b *Bridge) peerOpened() {
	s := &b.idle
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peers++
	s.gen++
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
}

// peerClosed counts a peer gone; the last one schedules the release.
func (b *Bridge) peerClosed() {
	s := &b.idle
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peers--
	s.gen++
	if s.peers > 0 || s.closed {
		return
	}
	wait := s.wait
	if wait == 0 {
		wait = idleRelease
	}
	gen := s.gen
	if s.timer != nil {
		s.timer.Stop()
	}
	s.timer = time.AfterFunc(wait, func() { b.releaseIdle(gen) })
}

// releaseIdle runs on the timer of generation gen: if no peer came or went since, it
// frees the spare egress batches and returns the free heap to the OS.
func (b *Bridge) releaseIdle(gen uint64) {
	s := &b.idle
	s.mu.Lock()
	if s.closed || s.gen != gen || s.peers != 0 {
		s.mu.Unlock()
		return
	}
	s.timer = nil
	s.mu.Unlock()
	freed := b.egress.Trim()
	start := time.Now()
	debug.FreeOSMemory()
	if b.log != nil {
		b.log.Info("bridge idle: memory returned", "egress_batches_freed", freed, "took", time.Since(start))
	}
	s.mu.Lock()
	s.releases++
	s.mu.Unlock()
}

// stopIdle cancels a pending release; the bridge is closing.
func (b *Bridge) stopIdle() {
	s := &b.idle
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
}

// idleReleases is how many releases the bridge has done.
func (b *Bridge) idleReleases() int {
	s := &b.idle
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.releases
}
