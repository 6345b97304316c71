//go:build !race

package recorder

// raceEnabled: the tests run under the race detector (-race).
const raceEnabled = false
