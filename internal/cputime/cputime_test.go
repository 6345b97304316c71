package cputime

import (
	"runtime"
	"testing"
	"time"
)

// TestCPUTimeGrows burns CPU on a locked thread until both figures move (a loaded box
// may take a while to run it), and checks the process spent at least what its thread did.
func TestCPUTimeGrows(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p0, t0 := Process(), Thread()
	x := uint64(1)
	for deadline := time.Now().Add(30 * time.Second); Thread() == t0 || Process() == p0; {
		if time.Now().After(deadline) {
			t.Fatalf("no CPU time counted after 30 s of spinning: process %v, thread %v", Process(), Thread())
		}
		for i := 0; i < 1_000_000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	if th, p := Thread(), Process(); p < th {
		t.Errorf("process CPU %v below its thread's %v (x %d)", p, th, x)
	}
}
