//go:build race

package signaling_test

// raceEnabled: the tests of hundreds of endpoints run smaller under the race detector
// (it costs them several times the CPU); make test runs them at full size without it.
const raceEnabled = true
