//go:build race

package sipgw

// raceEnabled: the race detector makes sync.Pool drop items at random (pion's SRTP
// keeps its AES-CTR buffers in one), so allocation counts are only asserted without it.
const raceEnabled = true
