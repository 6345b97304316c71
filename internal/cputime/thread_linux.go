package cputime

import "time"

// Thread is the calling OS thread's user and system CPU time; the caller locks its
// goroutine to the thread (runtime.LockOSThread) for the figure to mean anything.
func Thread() time.Duration {
	const rusageThread = 1 // RUSAGE_THREAD, which package syscall does not name
	return rusage(rusageThread)
}
