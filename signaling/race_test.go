//go:build race

package signaling_test

// raceEnabled: the tests of hundreds of endpoints skip under the race detector, which
// costs them several times the CPU; make test runs them without it.
const raceEnabled = true
