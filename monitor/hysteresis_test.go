package monitor

import (
	"strings"
	"testing"
	"time"
)

// Hysteresis: a worse grade at once, a better one after Hold without anything worse.
func TestHysteresis(t *testing.T) {
	const (
		G = GradeGood
		F = GradeFair
		P = GradePoor
		L = GradeLost
		U = GradeUnknown
	)
	cases := []struct {
		name string
		hold time.Duration
		raw  []Grade // one per second
		want []Grade
	}{
		{"steady good", 3 * time.Second,
			[]Grade{G, G, G}, []Grade{G, G, G}},
		{"degrades at once", 3 * time.Second,
			[]Grade{G, P, L}, []Grade{G, P, L}},
		{"recovers after the hold", 3 * time.Second,
			[]Grade{P, G, G, G, G}, []Grade{P, P, P, G, G}},
		{"a blip restarts the hold", 3 * time.Second,
			[]Grade{P, G, G, P, G, G, G}, []Grade{P, P, P, P, P, P, G}},
		{"steps down through fair", 3 * time.Second,
			[]Grade{L, F, F, G, G, G, G}, []Grade{L, L, L, F, F, G, G}},
		{"flapping around a limit shows the worse", 3 * time.Second,
			[]Grade{G, F, G, F, G, F, G}, []Grade{G, F, F, F, F, F, F}},
		{"unknown does not count", 3 * time.Second,
			[]Grade{U, G, U, U, U, U}, []Grade{U, G, G, G, U, U}},
		{"no hold", 0,
			[]Grade{P, G, L, F}, []Grade{P, G, L, F}},
	}
	t0 := time.Unix(1_700_000_000, 0)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := Hysteresis{Hold: c.hold}
			var got []string
			for i, g := range c.raw {
				got = append(got, h.Update(g, t0.Add(time.Duration(i)*time.Second)).String())
			}
			var want []string
			for _, g := range c.want {
				want = append(want, g.String())
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("raw %v\n got %v\nwant %v", c.raw, got, want)
			}
		})
	}
}
