//go:build !unix

package loadtest

import "time"

// selfCPU is not measured on this platform; the tester's CPU figures read 0.
func selfCPU() time.Duration { return 0 }
