package recorder

// voice tells talk from silence in an Opus stream without decoding it, from packet sizes:
// the encoder spends few bytes on silence or steady background noise and many on
// speech. The noise floor is the smallest packet of the last few seconds, so a noisy
// room raises it; a packet counts as active when clearly above it. Talking starts after
// voiceStart active frames in a row and ends after voiceEnd quiet ones. It is a
// heuristic for the timeline's "who spoke", not a level meter.
type voice struct {
	minima  [voiceBuckets]int // smallest packet per bucket of voiceBucket frames
	frames  int
	run     int // active frames in a row
	quiet   int // quiet frames in a row while talking
	talking bool
}

const (
	voiceBucket  = 50 // frames per noise-floor bucket (1 s of 20 ms frames)
	voiceBuckets = 8  // the floor is the minimum over 8 s
	voiceStart   = 3  // 60 ms of activity starts a talk spurt
	voiceEnd     = 25 // 500 ms of quiet ends it
	voiceMargin  = 12 // bytes above 1.5 × the floor that count as active
)

// frame takes one Opus frame's size; it returns +1 when talking starts (the spurt began
// voiceStart−1 frames before this one), −1 when it ends (it ended voiceEnd frames
// before), else 0.
func (v *voice) frame(size int) int {
	b := (v.frames / voiceBucket) % voiceBuckets
	if v.frames%voiceBucket == 0 || size < v.minima[b] {
		v.minima[b] = size
	}
	v.frames++
	floor := size
	for i := range min(v.frames/voiceBucket+1, voiceBuckets) {
		floor = min(floor, v.minima[i])
	}
	active := v.frames > voiceStart && size > floor*3/2+voiceMargin
	if active {
		v.run++
		v.quiet = 0
	} else {
		v.run = 0
	}
	switch {
	case !v.talking && v.run >= voiceStart:
		v.talking = true
		return 1
	case v.talking && !active:
		v.quiet++
		if v.quiet >= voiceEnd {
			v.talking, v.quiet = false, 0
			return -1
		}
	}
	return 0
}
