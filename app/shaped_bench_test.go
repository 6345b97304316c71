package app_test

import (
	"os"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/videowatch"
)

// TestShapedStepFigures is issue 10's benchmark of adaptation, run on demand (it takes
// two browser runs of about two minutes each): make bench-shaped, or
//
//	CAU_BENCH_SHAPED=1 go test -count=1 -p 1 -run TestShapedStepFigures -v ./app
//
// The step of TestBrowserSimulcastShapedStep (3 Mbit/s, 400 kbit/s for 20 s, 3 Mbit/s
// again for 20 s) once with the bridge adapting and once with every subscription held at
// the top layer (app.Config.FixedTopLayer). For each, the commune's freeze time and mean
// received resolution while the link is poor and after it recovers, beside the same
// figures of the unshaped district in the same run (docs/benchmarks.md).
func TestShapedStepFigures(t *testing.T) {
	if os.Getenv("CAU_BENCH_SHAPED") == "" {
		t.Skip("a benchmark: set CAU_BENCH_SHAPED=1 (make bench-shaped)")
	}
	for _, mode := range []struct {
		name     string
		fixedTop bool
	}{{"adaptive", false}, {"top-layer-only", true}} {
		t.Run(mode.name, func(t *testing.T) {
			run := runShapedStep(t, stepPlan{subnet: "10.222.0", fixedTop: mode.fixedTop, poor: 20 * time.Second,
				recovery: 20 * time.Second, settle: 3 * time.Second})
			end := time.Now()
			for _, phase := range []struct {
				name     string
				from, to time.Time
			}{{"poor", run.shapedAt, run.liftedAt}, {"recovery", run.liftedAt, end}, {"whole", run.shapedAt, end}} {
				com := run.commune.Analyze(phase.from, phase.to)
				dis := run.district.Analyze(phase.from, phase.to)
				t.Logf("%s %-8s %4.0fs | commune: frozen %6.2fs (%2d freezes, longest %5.2fs), %4d frames, mean %4.0fx%-4.0f "+
					"| district (reference): frozen %5.2fs, %4d frames, mean %4.0fx%-4.0f",
					mode.name, phase.name, phase.to.Sub(phase.from).Seconds(),
					com.Frozen.Seconds(), com.Freezes, com.MaxFreeze.Seconds(), com.Shown, com.MeanWidth, com.MeanHeight,
					dis.Frozen.Seconds(), dis.Shown, dis.MeanWidth, dis.MeanHeight)
			}
			t.Logf("%s: page top layer %d wide; freezes are intervals of %v or more between shown frames", mode.name, run.top,
				videowatch.FreezeMin)
		})
	}
}
