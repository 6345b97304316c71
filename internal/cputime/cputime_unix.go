//go:build unix

package cputime

import (
	"syscall"
	"time"
)

// Process is this process's user and system CPU time, 0 if the kernel does not say.
func Process() time.Duration { return rusage(syscall.RUSAGE_SELF) }

// rusage is the user and system CPU time getrusage(2) gives for who, 0 on error.
func rusage(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
