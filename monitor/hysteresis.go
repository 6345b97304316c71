package monitor

import "time"

// Hysteresis turns raw grades, one per sample, into a grade that does not flap: a worse
// grade applies at once, a better one only when nothing worse has been seen for Hold. Put
// differently, the grade is the worst raw grade of the last Hold. Unknown raw grades (no
// media) are ignored; once every known grade is older than Hold the result is unknown.
//
// A Hysteresis is a value owned by one goroutine (the monitor's sampler); it has no lock.
type Hysteresis struct {
	Hold time.Duration
	seen [GradeLost + 1]time.Time // when each grade was last observed raw
}

// Update records a raw grade observed at now and returns the stable grade.
func (h *Hysteresis) Update(raw Grade, now time.Time) Grade {
	if raw >= GradeGood && raw <= GradeLost {
		h.seen[raw] = now
	}
	return h.Current(now)
}

// Current returns the stable grade at now without recording anything.
func (h *Hysteresis) Current(now time.Time) Grade {
	for g := GradeLost; g >= GradeGood; g-- {
		if t := h.seen[g]; !t.IsZero() && now.Sub(t) < h.hold() {
			return g
		}
	}
	return GradeUnknown
}

func (h *Hysteresis) hold() time.Duration {
	if h.Hold <= 0 {
		return time.Nanosecond // no hysteresis: only the latest sample counts
	}
	return h.Hold
}
