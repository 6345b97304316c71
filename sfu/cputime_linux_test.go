package sfu

import (
	"syscall"
	"time"
)

// threadCPU is the calling OS thread's user and system CPU time (the caller locks its
// goroutine to the thread).
func threadCPU() time.Duration {
	const rusageThread = 1 // RUSAGE_THREAD
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
