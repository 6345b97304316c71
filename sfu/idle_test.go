package sfu

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// idleSnapshot is what the process held with the bridge up and no peer yet.
type idleSnapshot struct {
	goroutines int
	heapAlloc  uint64
}

// idleBaseline shortens b's idle wait and records the process's goroutines and live heap
// before the first peer joins.
func idleBaseline(b *Bridge) idleSnapshot {
	b.idle.wait = 50 * time.Millisecond
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return idleSnapshot{goroutines: runtime.NumGoroutine(), heapAlloc: m.HeapAlloc}
}

// check asserts that once every peer has closed, the bridge returns to its idle state
// (issue 11): the idle release runs, the goroutines are back to the baseline's count,
// the free heap it returned stays returned (not kept for a meeting that is over), and,
// once drop has let go of the test's own references to the endpoints (its pion stacks,
// the bridge's Peers and UpTracks), nothing of the meeting stays live. Bounds in MB, not
// timings.
func (s idleSnapshot) check(t *testing.T, b *Bridge, drop func()) {
	t.Helper()
	eventually(t, 10*time.Second, func() string {
		if n := b.idleReleases(); n == 0 {
			return "the bridge has not released its memory after its last peer left"
		}
		if g := runtime.NumGoroutine(); g > s.goroutines {
			return fmt.Sprintf("%d goroutines, %d before the meeting", g, s.goroutines)
		}
		return ""
	})
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	kept := m.HeapIdle - m.HeapReleased
	drop()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("after the meeting: free heap not returned %d kB, live heap %d kB (%d kB before), heap in use %d kB",
		kept>>10, after.HeapAlloc>>10, s.heapAlloc>>10, after.HeapInuse>>10)
	if kept > 4<<20 {
		t.Errorf("%d kB of free heap kept from the OS after the idle release", kept>>10)
	}
	if after.HeapAlloc > s.heapAlloc+2<<20 {
		t.Errorf("live heap %d kB after the meeting, %d kB before it", after.HeapAlloc>>10, s.heapAlloc>>10)
	}
}
