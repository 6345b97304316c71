//go:build race

package sfu

// raceEnabled: the race detector slows the readers so much on a loaded machine that the
// overload skip (backpressure.go) runs; see TestLastNBoundsVideoAndFollowsTheSpeaker.
const raceEnabled = true
