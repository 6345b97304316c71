package memtune

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestReleaseWhenIdleOncePerMeeting: nothing is released while busy or before the server
// was ever busy, exactly one release follows each busy → idle change, and none repeats
// while the server stays idle.
func TestReleaseWhenIdleOncePerMeeting(t *testing.T) {
	var busy atomic.Bool
	var released, polls atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		ReleaseWhenIdle(ctx, time.Millisecond, func() bool { polls.Add(1); return busy.Load() },
			func() { released.Add(1) })
	}()
	// waitPolls lets the loop poll n more times, whatever the machine's pace.
	waitPolls := func(n int64) {
		t.Helper()
		target := polls.Load() + n
		deadline := time.Now().Add(10 * time.Second)
		for polls.Load() < target {
			if time.Now().After(deadline) {
				t.Fatalf("the loop polled %d times in 10 s, want %d", polls.Load(), target)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitPolls(5)
	if n := released.Load(); n != 0 {
		t.Fatalf("released %d times before the server was ever busy", n)
	}
	busy.Store(true)
	waitPolls(5)
	if n := released.Load(); n != 0 {
		t.Fatalf("released %d times while busy", n)
	}
	busy.Store(false)
	waitPolls(5)
	if n := released.Load(); n != 1 {
		t.Fatalf("released %d times after the meeting ended, want 1", n)
	}
	busy.Store(true)
	waitPolls(3)
	busy.Store(false)
	waitPolls(5)
	if n := released.Load(); n != 2 {
		t.Fatalf("released %d times after two meetings, want 2", n)
	}
	cancel()
	<-done
}
