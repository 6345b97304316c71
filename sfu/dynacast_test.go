package sfu

import (
	"testing"
	"time"
)

// TestLayerSwitchHysteresis walks one source's need through time: a layer goes off only
// after dynacastOffAfter unneeded, comes back at once, and a flap within the hysteresis
// changes nothing.
func TestLayerSwitchHysteresis(t *testing.T) {
	all := [maxLayers]bool{true, true, true}
	type step struct {
		at      time.Duration // since the source arrived
		need    int8
		active  [maxLayers]bool
		changed bool
		on      [maxLayers]bool // turned on at this step
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"everyone needs the top", []step{
			{0, 2, all, false, [3]bool{}},
			{10 * time.Second, 2, all, false, [3]bool{}},
		}},
		{"small tiles: the top two go after the hysteresis", []step{
			{0, 0, all, false, [3]bool{}},
			{dynacastOffAfter - time.Millisecond, 0, all, false, [3]bool{}},
			{dynacastOffAfter, 0, [3]bool{true, false, false}, true, [3]bool{}},
			{dynacastOffAfter + time.Second, 0, [3]bool{true, false, false}, false, [3]bool{}},
		}},
		{"a large tile brings the top back at once", []step{
			{0, 0, all, false, [3]bool{}},
			{4 * time.Second, 0, [3]bool{true, false, false}, true, [3]bool{}},
			{4*time.Second + dynacastTick, 2, all, true, [3]bool{false, true, true}},
		}},
		{"nobody watches: every layer goes, the lowest too", []step{
			{0, -1, all, false, [3]bool{}},
			{dynacastOffAfter, -1, [3]bool{}, true, [3]bool{}},
			{dynacastOffAfter + dynacastTick, 0, [3]bool{true, false, false}, true, [3]bool{true, false, false}},
		}},
		{"a flap within the hysteresis changes nothing", []step{
			{0, 2, all, false, [3]bool{}},
			{time.Second, 0, all, false, [3]bool{}},
			{2 * time.Second, 2, all, false, [3]bool{}},
			{2*time.Second + dynacastOffAfter - time.Millisecond, 0, all, false, [3]bool{}},
			{2*time.Second + dynacastOffAfter, 0, [3]bool{true, false, false}, true, [3]bool{}},
		}},
		{"the middle stays while a middle tile watches", []step{
			{0, 1, all, false, [3]bool{}},
			{dynacastOffAfter, 1, [3]bool{true, true, false}, true, [3]bool{}},
			{dynacastOffAfter + dynacastTick, 0, [3]bool{true, true, false}, false, [3]bool{}},
			{2*dynacastOffAfter + dynacastTick, 0, [3]bool{true, false, false}, true, [3]bool{}},
		}},
	}
	t0 := time.Unix(1_800_000_000, 0)
	for _, c := range cases {
		s := newLayerSwitch(t0)
		for i, st := range c.steps {
			on, changed := s.step(t0.Add(st.at), st.need)
			if s.active != st.active || changed != st.changed || on != st.on {
				t.Errorf("%s, step %d (need %d at %v): active %v changed %v on %v, want %v %v %v",
					c.name, i, st.need, st.at, s.active, changed, on, st.active, st.changed, st.on)
			}
		}
	}
}
