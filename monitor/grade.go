// Package monitor grades link quality per endpoint, relay link and site, keeps a short
// history for the technicians' console, raises alerts, and exports the figures to
// Prometheus. It samples signaling's view of every endpoint link and relay link once a
// second (signaling.Server.Links, RelayStats, Bridges); it never touches packets.
//
// Grades follow DOMAIN.md §4.3 (ITU-T G.114 one-way delay, RFC 3550 jitter, loss, the
// G.107 E-model) over a 5-second window, with hysteresis: a worse grade applies at once,
// a better one only once it has held for Hold (10 s by default). See docs/monitoring.md.
package monitor

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Grade is a link's quality class. Higher is worse, so the worst of several grades is
// their maximum; GradeUnknown (no figures yet) never wins over a real grade.
type Grade int8

// The grades. The numeric values are what cau_site_grade and cau_relay_grade export.
const (
	GradeUnknown Grade = -1 // no media to judge (nothing sent or received yet)
	GradeGood    Grade = 0
	GradeFair    Grade = 1
	GradePoor    Grade = 2
	GradeLost    Grade = 3 // no RTP/RTCP for LostAfter
)

var gradeNames = [...]string{"good", "fair", "poor", "lost"}

// String is the grade's lower-case name ("good" … "lost", "unknown").
func (g Grade) String() string {
	if g < GradeGood || g > GradeLost {
		return "unknown"
	}
	return gradeNames[g]
}

// MarshalText encodes the grade by name, so JSON carries "poor", not 2.
func (g Grade) MarshalText() ([]byte, error) { return []byte(g.String()), nil }

// UnmarshalText decodes a grade name; an unrecognised name is GradeUnknown.
func (g *Grade) UnmarshalText(b []byte) error {
	*g = ParseGrade(string(b))
	return nil
}

// ParseGrade returns the grade named s, or GradeUnknown.
func ParseGrade(s string) Grade {
	for i, n := range gradeNames {
		if n == s {
			return Grade(i)
		}
	}
	return GradeUnknown
}

// Worst returns the worse of two grades, ignoring unknown ones.
func Worst(a, b Grade) Grade {
	if a == GradeUnknown {
		return b
	}
	if b > a {
		return b
	}
	return a
}

// Thresholds are the grading limits. Each pair is (fair above, poor above); values equal to
// a limit get the better grade, except loss, whose good range is strictly below LossFairPct
// (DOMAIN.md §4.3: "< 1%").
type Thresholds struct {
	// One-way delay, taken as RTT/2 (ITU-T G.114: ≤ 150 ms acceptable, > 400 ms not).
	DelayFairMs, DelayPoorMs float64
	// RFC 3550 interarrival jitter.
	JitterFairMs, JitterPoorMs float64
	// Packet loss in percent (Polycom RMX / Vidyo: < 1% normal, > 5% critical).
	LossFairPct, LossPoorPct float64
	// E-model rating R (ITU-T G.107): good at or above RGood, poor below RPoor.
	RGood, RPoor float64
	// LostAfter without any packet or report in a direction grades it lost.
	LostAfter time.Duration
	// EModel shapes the R estimate; see EModel.
	EModel EModel
}

// DefaultThresholds are DOMAIN.md §4.3's proposal.
func DefaultThresholds() Thresholds {
	return Thresholds{
		DelayFairMs: 150, DelayPoorMs: 400,
		JitterFairMs: 30, JitterPoorMs: 50,
		LossFairPct: 1, LossPoorPct: 5,
		RGood: 80, RPoor: 70,
		LostAfter: 5 * time.Second,
		EModel:    DefaultEModel(),
	}
}

// EModel holds the parameters of the simplified ITU-T G.107 rating used for audio:
//
//	R = R0 − Id(d) − Ie,eff(Ppl)
//	Id = 0.024·d + 0.11·(d − 177.3)·H(d − 177.3)          (delay impairment)
//	Ie,eff = Ie + (95 − Ie)·Ppl / (Ppl/BurstR + Bpl)       (loss impairment)
//
// with d the mouth-to-ear delay in ms, taken as one-way delay + 2·jitter (a jitter buffer
// of twice the jitter, as LiveKit's scorer assumes), and Ppl the loss in percent. G.113 has
// no Opus entry; the defaults are its Appendix I values for G.711 with packet-loss
// concealment (Ie 0, Bpl 25.1), a fair stand-in for Opus with PLC.
type EModel struct {
	R0, Ie, Bpl, BurstR float64
}

// DefaultEModel is R0 93.2 (G.107 defaults), Ie 0, Bpl 25.1, random loss (BurstR 1).
func DefaultEModel() EModel { return EModel{R0: 93.2, Ie: 0, Bpl: 25.1, BurstR: 1} }

// R estimates the transmission rating for a one-way delay, jitter and loss.
func (e EModel) R(oneWayMs, jitterMs, lossPct float64) float64 {
	d := oneWayMs + 2*jitterMs
	id := 0.024 * d
	if d > 177.3 {
		id += 0.11 * (d - 177.3)
	}
	burst := e.BurstR
	if burst <= 0 {
		burst = 1
	}
	ie := e.Ie
	if lossPct > 0 {
		ie += (95 - e.Ie) * lossPct / (lossPct/burst + e.Bpl)
	}
	return e.R0 - id - ie
}

// MOS converts a rating R to a mean opinion score (ITU-T G.107 Annex B): 1 below R 0,
// 4.5 above R 100.
func MOS(r float64) float64 {
	switch {
	case r <= 0:
		return 1
	case r >= 100:
		return 4.5
	}
	return 1 + 0.035*r + 7e-6*r*(r-60)*(100-r)
}

// Figures are one direction of a link over the grading window.
type Figures struct {
	Streams int `json:"streams"`
	// RTTMs is the round-trip time, 0 while unmeasured. It belongs to the path, so both
	// directions of a link carry the same value.
	RTTMs      float64 `json:"rtt_ms"`
	JitterMs   float64 `json:"jitter_ms"`
	LossPct    float64 `json:"loss_pct"`
	BitrateBps float64 `json:"bitrate_bps"`
	// Silence is how long nothing has arrived (a packet, or for a receiving endpoint its
	// receiver report); 0 when media flows.
	Silence time.Duration `json:"silence_ns"`
	// HopMeasured says LossPct is this hop's own loss, from its transport's TWCC feedback
	// (see HopView); otherwise it is the receiver reports', upstream loss included.
	HopMeasured bool `json:"hop_measured,omitempty"`
	// UpstreamLossPct is, for what an endpoint receives, the loss that arrived already
	// missing from upstream (its receiver reports' loss less its own link's): not its fault.
	UpstreamLossPct float64 `json:"upstream_loss_pct,omitempty"`
	// RTTMaxMs is the largest validated RTT sample of the last 5 to 10 s (hop figures only).
	RTTMaxMs float64 `json:"rtt_max_ms,omitempty"`
}

// Assessment is a grade with the E-model estimate and the reasons for it.
type Assessment struct {
	Grade Grade   `json:"grade"`
	R     float64 `json:"r"`
	MOS   float64 `json:"mos"`
	// Reasons name each figure outside its good range, e.g. "loss 8.0% > 5%".
	Reasons []string `json:"reasons,omitempty"`
}

// Assess grades one direction's figures. A direction with no stream is unknown; one
// silent for LostAfter is lost; otherwise the grade is the worst of delay, jitter, loss
// and the E-model rating.
func (th Thresholds) Assess(f Figures) Assessment {
	if f.Streams == 0 {
		return Assessment{Grade: GradeUnknown}
	}
	if f.Silence >= th.LostAfter {
		return Assessment{Grade: GradeLost, R: 0, MOS: 1,
			Reasons: []string{fmt.Sprintf("no media for %.0f s", f.Silence.Seconds())}}
	}
	a := Assessment{Grade: GradeGood}
	oneWay := f.RTTMs / 2
	a.R = th.EModel.R(oneWay, f.JitterMs, f.LossPct)
	a.MOS = MOS(a.R)
	worse := func(g Grade, format string, args ...any) {
		if g > GradeGood {
			a.Reasons = append(a.Reasons, fmt.Sprintf(format, args...))
		}
		a.Grade = Worst(a.Grade, g)
	}
	g := above(oneWay, th.DelayFairMs, th.DelayPoorMs)
	worse(g, "one-way delay %.0f ms > %.0f ms", oneWay, limit(g, th.DelayFairMs, th.DelayPoorMs))
	g = above(f.JitterMs, th.JitterFairMs, th.JitterPoorMs)
	worse(g, "jitter %.0f ms > %.0f ms", f.JitterMs, limit(g, th.JitterFairMs, th.JitterPoorMs))
	switch {
	case f.LossPct > th.LossPoorPct:
		worse(GradePoor, "loss %.1f%% > %.0f%%", f.LossPct, th.LossPoorPct)
	case f.LossPct >= th.LossFairPct:
		worse(GradeFair, "loss %.1f%% ≥ %.0f%%", f.LossPct, th.LossFairPct)
	}
	g = GradeGood
	switch {
	case a.R < th.RPoor:
		g = GradePoor
	case a.R < th.RGood:
		g = GradeFair
	}
	worse(g, "E-model R %.0f (MOS %.1f) < %.0f", a.R, a.MOS, limit(g, th.RGood, th.RPoor))
	return a
}

// above grades v against (fair, poor] limits: ≤ fair good, ≤ poor fair, else poor.
func above(v, fair, poor float64) Grade {
	switch {
	case v > poor:
		return GradePoor
	case v > fair:
		return GradeFair
	}
	return GradeGood
}

func limit(g Grade, fair, poor float64) float64 {
	if g == GradePoor {
		return poor
	}
	return fair
}

// combine merges two directions' assessments into the link's: the worse grade, the
// lower R, and both directions' reasons, each prefixed with its direction ("up+down" for
// a reason both share, such as the path's delay).
func combine(up, down Assessment) Assessment {
	out := Assessment{Grade: Worst(up.Grade, down.Grade), R: math.NaN()}
	for _, a := range []Assessment{up, down} {
		if a.Grade != GradeUnknown && (math.IsNaN(out.R) || a.R < out.R) {
			out.R, out.MOS = a.R, a.MOS
		}
	}
	if math.IsNaN(out.R) {
		out.R = 0
	}
	for _, r := range up.Reasons {
		if slices.Contains(down.Reasons, r) {
			out.Reasons = append(out.Reasons, "up+down: "+r)
		} else {
			out.Reasons = append(out.Reasons, "up: "+r)
		}
	}
	for _, r := range down.Reasons {
		if !slices.Contains(up.Reasons, r) {
			out.Reasons = append(out.Reasons, "down: "+r)
		}
	}
	return out
}
