//go:build !race

package sipgw

const raceEnabled = false
