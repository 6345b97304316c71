//go:build !linux

package cputime

import "time"

// Thread falls back to the process's CPU time where there is no per-thread figure.
func Thread() time.Duration { return Process() }
