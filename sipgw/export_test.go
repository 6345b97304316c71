package sipgw

// RaceEnabled tells the external tests whether the race detector is on (race_test.go).
const RaceEnabled = raceEnabled

// OpusPeak decodes Opus packets (mono, at 16 kHz, in order) and returns the largest
// sample magnitude: what a participant would hear of them (0 without libopus).
func OpusPeak(packets [][]byte) int {
	dec, err := newOpusDecoder(g722Rate)
	if err != nil {
		return 0
	}
	defer dec.close()
	pcm := make([]int16, 120*g722Rate/1000)
	peak := 0
	for _, p := range packets {
		n, err := dec.decode(p, pcm)
		if err != nil {
			continue
		}
		for _, s := range pcm[:n] {
			peak = max(peak, int(s), -int(s))
		}
	}
	return peak
}
