// Package memtune sets the Go runtime's garbage-collection target (GOGC) and soft memory
// limit (GOMEMLIMIT) of a long-running server from its configuration. The environment
// variables, when set, win: they are the runtime's own knobs, and an operator who set
// them meant them.
//
// Why a server sets them at all (issue 11): a bridge's live heap is mostly per-endpoint
// state that lives as long as the meeting, and the allocation rate is bursty (joins,
// DTLS handshakes) with almost nothing allocated per forwarded packet. With Go's default
// GOGC of 100 the heap may grow to twice the live heap before a collection, and that
// headroom, left behind by each join storm, was half of the resident memory per
// endpoint. A lower target costs little CPU because collections are rare between
// joins; the soft limit lets an operator bound a box's memory without an OOM kill.
package memtune

import (
	"math"
	"runtime/debug"
)

// DefaultGCPercent is the GOGC a server runs with unless configured otherwise.
const DefaultGCPercent = 50

// NoLimit is the memory limit meaning none (the runtime's own default).
const NoLimit int64 = math.MaxInt64

// Settings is what Apply left in force.
type Settings struct {
	// GCPercent is the collection target in force (-1: off, collections only at the limit).
	GCPercent int
	// Limit is the soft memory limit in bytes in force (NoLimit: none).
	Limit int64
	// GCPercentFromEnv and LimitFromEnv say that GOGC or GOMEMLIMIT was set in the
	// environment and left as the runtime read it.
	GCPercentFromEnv, LimitFromEnv bool
}

// Apply sets the collection target to gcPercent (0 means DefaultGCPercent, -1 off) and the
// soft memory limit to limit bytes (0 or NoLimit: none), except where getenv (usually
// os.Getenv) has GOGC or GOMEMLIMIT, which the runtime has already applied. It returns
// the settings in force.
func Apply(gcPercent int, limit int64, getenv func(string) string) Settings {
	var s Settings
	if getenv("GOGC") != "" {
		s.GCPercentFromEnv = true
		s.GCPercent = debug.SetGCPercent(-1) // read it back...
		debug.SetGCPercent(s.GCPercent)      // ...and restore
	} else {
		if gcPercent == 0 {
			gcPercent = DefaultGCPercent
		}
		debug.SetGCPercent(gcPercent)
		s.GCPercent = gcPercent
	}
	if getenv("GOMEMLIMIT") != "" {
		s.LimitFromEnv = true
		s.Limit = debug.SetMemoryLimit(-1) // a negative value only reads it
	} else {
		if limit <= 0 {
			limit = NoLimit
		}
		debug.SetMemoryLimit(limit)
		s.Limit = limit
	}
	return s
}
