//go:build race

package signaling_test

// raceEnabled: the tests of hundreds of endpoints skip under the race detector, whose
// readers lag by seconds on a loaded machine; make test runs them without it.
const raceEnabled = true
