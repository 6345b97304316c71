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
// the free heap stays returned to the OS (not kept for a meeting that is over), and,
// once drop has let go of the test's own references to the endpoints (their pion
// stacks, the bridge's Peers and UpTracks), nothing of the meeting stays live: within
// 2 MB of the baseline after a collection. Pending timers (pion's, a few seconds at
// most) may hold a closed connection a while, so the heap is polled; bounds in MB, and
// the waits end as soon as they hold.
func (s idleSnapshot) check(t *testing.T, b *Bridge, drop func()) {
	t.Helper()
	start := time.Now()
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
	if kept := m.HeapIdle - m.HeapReleased; kept > 4<<20 {
		t.Errorf("%d kB of free heap kept from the OS after the idle release", kept>>10)
	}
	drop()
	eventually(t, 10*time.Second, func() string {
		runtime.GC()
		runtime.ReadMemStats(&m)
		if m.HeapAlloc > s.heapAlloc+2<<20 {
			return fmt.Sprintf("live heap %d kB after the meeting, %d kB before it", m.HeapAlloc>>10, s.heapAlloc>>10)
		}
		return ""
	})
	t.Logf("after the meeting: live heap %d kB (%d kB before), heap in use %d kB; checked in %v",
		m.HeapAlloc>>10, s.heapAlloc>>10, m.HeapInuse>>10, time.Since(start).Round(time.Millisecond))
}
