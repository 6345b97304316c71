package monitor

import (
	"math"
	"strings"
	"testing"
	"time"
)

// The grading table of DOMAIN.md §4.3, one axis at a time, at and around each limit.
func TestAssessThresholds(t *testing.T) {
	th := DefaultThresholds()
	base := Figures{Streams: 2, RTTMs: 20, JitterMs: 2, LossPct: 0}
	cases := []struct {
		name string
		edit func(*Figures)
		want Grade
	}{
		{"clean link", func(*Figures) {}, GradeGood},
		// ITU-T G.114: one-way delay (RTT/2) ≤ 150 ms acceptable, ≤ 400 ms with care.
		{"G.114 one-way 150 ms", func(f *Figures) { f.RTTMs = 300 }, GradeGood},
		{"G.114 one-way 151 ms", func(f *Figures) { f.RTTMs = 302 }, GradeFair},
		{"G.114 one-way 300 ms", func(f *Figures) { f.RTTMs = 600 }, GradeFair}, // R 72
		// The E-model's delay impairment alone takes R under 70 near 320 ms one way,
		// before G.114's 400 ms limit.
		{"one-way 330 ms, R 68", func(f *Figures) { f.RTTMs = 660 }, GradePoor},
		{"G.114 one-way 401 ms", func(f *Figures) { f.RTTMs = 802 }, GradePoor},
		// RFC 3550 jitter 30/50 ms (Teams' < 30 ms target; Circuit's 50 ms alarm).
		{"jitter 30 ms", func(f *Figures) { f.JitterMs = 30 }, GradeGood},
		{"jitter 31 ms", func(f *Figures) { f.JitterMs = 31 }, GradeFair},
		{"jitter 50 ms", func(f *Figures) { f.JitterMs = 50 }, GradeFair},
		{"jitter 51 ms", func(f *Figures) { f.JitterMs = 51 }, GradePoor},
		// Loss: < 1% good, 1–5% fair, > 5% poor (Polycom RMX, Vidyo).
		{"loss 0.99%", func(f *Figures) { f.LossPct = 0.99 }, GradeGood},
		{"loss 1%", func(f *Figures) { f.LossPct = 1 }, GradeFair},
		{"loss 5%", func(f *Figures) { f.LossPct = 5 }, GradeFair},
		{"loss 5.01%", func(f *Figures) { f.LossPct = 5.01 }, GradePoor},
		{"loss 8%", func(f *Figures) { f.LossPct = 8 }, GradePoor},
		// The impairment: 8% loss and 200 ms each way.
		{"8% loss, 200 ms each way", func(f *Figures) { f.LossPct, f.RTTMs = 8, 400 }, GradePoor},
		// Each axis fair, together poor: the E-model adds the impairments (R ≈ 65).
		{"one-way 250 ms alone", func(f *Figures) { f.RTTMs = 500 }, GradeFair},
		{"loss 4% alone", func(f *Figures) { f.LossPct = 4 }, GradeFair},
		{"fair delay + fair loss = poor R", func(f *Figures) { f.RTTMs, f.LossPct = 500, 4 }, GradePoor},
		// Lost: no RTP/RTCP for 5 s.
		{"silent 4.9 s", func(f *Figures) { f.Silence = 4900 * time.Millisecond }, GradeGood},
		{"silent 5 s", func(f *Figures) { f.Silence = 5 * time.Second }, GradeLost},
		{"no stream", func(f *Figures) { f.Streams = 0 }, GradeUnknown},
		{"RTT not measured yet", func(f *Figures) { f.RTTMs = 0 }, GradeGood},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := base
			c.edit(&f)
			a := th.Assess(f)
			if a.Grade != c.want {
				t.Fatalf("%+v: grade %v (R %.1f, reasons %q), want %v", f, a.Grade, a.R, a.Reasons, c.want)
			}
			if (a.Grade > GradeGood) != (len(a.Reasons) > 0) {
				t.Errorf("grade %v with reasons %q", a.Grade, a.Reasons)
			}
		})
	}
}

// ITU-T G.107: the MOS for the R boundaries of the satisfaction table, and the R of the
// default parameters.
func TestEModel(t *testing.T) {
	for _, c := range []struct{ r, mos float64 }{
		{-5, 1}, {0, 1}, {50, 2.58}, {60, 3.1}, {70, 3.6}, {80, 4.02}, {90, 4.34}, {93.2, 4.41}, {100, 4.5}, {120, 4.5},
	} {
		if got := MOS(c.r); math.Abs(got-c.mos) > 0.01 {
			t.Errorf("MOS(R=%v) = %.3f, want %.2f", c.r, got, c.mos)
		}
	}
	e := DefaultEModel()
	for _, c := range []struct {
		name                 string
		oneWay, jitter, loss float64
		wantR, tolerance     float64
	}{
		{"ideal", 0, 0, 0, 93.2, 0.01},
		// Id = 0.024·d below 177.3 ms.
		{"100 ms", 100, 0, 0, 93.2 - 2.4, 0.01},
		// Id = 0.024·d + 0.11·(d − 177.3) above.
		{"200 ms", 200, 0, 0, 93.2 - 4.8 - 0.11*22.7, 0.01},
		// The jitter buffer (2 × jitter) is delay too.
		{"100 ms + 50 ms jitter", 100, 50, 0, 93.2 - 0.024*200 - 0.11*22.7, 0.01},
		// Ie,eff = 95·Ppl/(Ppl + 25.1) for G.711 with PLC and random loss.
		{"1% loss", 0, 0, 1, 93.2 - 95.0/26.1, 0.01},
		{"5% loss", 0, 0, 5, 93.2 - 95.0*5/30.1, 0.01},
	} {
		if got := e.R(c.oneWay, c.jitter, c.loss); math.Abs(got-c.wantR) > c.tolerance {
			t.Errorf("%s: R = %.2f, want %.2f", c.name, got, c.wantR)
		}
	}
}

func TestGradeNames(t *testing.T) {
	for g := GradeUnknown; g <= GradeLost; g++ {
		b, _ := g.MarshalText()
		var back Grade
		if err := back.UnmarshalText(b); err != nil || back != g {
			t.Errorf("%v → %s → %v", g, b, back)
		}
	}
	if Worst(GradeUnknown, GradeFair) != GradeFair || Worst(GradePoor, GradeUnknown) != GradePoor ||
		Worst(GradeLost, GradeGood) != GradeLost || Worst(GradeUnknown, GradeUnknown) != GradeUnknown {
		t.Error("Worst: unknown must never win, otherwise the higher grade")
	}
}

func TestCombineDirections(t *testing.T) {
	th := DefaultThresholds()
	up := th.Assess(Figures{Streams: 2, RTTMs: 40, LossPct: 8})
	down := th.Assess(Figures{Streams: 1, RTTMs: 40, JitterMs: 35})
	a := combine(up, down)
	if a.Grade != GradePoor || a.R != up.R {
		t.Fatalf("combined %v R %.1f, want poor with the uplink's R %.1f", a.Grade, a.R, up.R)
	}
	joined := strings.Join(a.Reasons, "|")
	if !strings.Contains(joined, "up: loss 8.0% > 5%") || !strings.Contains(joined, "down: jitter 35 ms > 30 ms") {
		t.Errorf("reasons %q lack a direction's cause", a.Reasons)
	}
	shared := combine(th.Assess(Figures{Streams: 1, RTTMs: 400}), th.Assess(Figures{Streams: 1, RTTMs: 400}))
	if len(shared.Reasons) != 1 || !strings.HasPrefix(shared.Reasons[0], "up+down: one-way delay 200 ms") {
		t.Errorf("a reason both directions share, once: %q", shared.Reasons)
	}
	if got := combine(Assessment{Grade: GradeUnknown}, down); got.Grade != GradeFair {
		t.Errorf("one silent direction: %v, want the other's fair", got.Grade)
	}
}
