package sipgw_test

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/testmedia"
)

// roomSteps are the room counts BenchmarkSIPRoomsPerBridge tries, in order; CAU_SIP_ROOMS
// (comma-separated) replaces them.
var roomSteps = []int{10, 20, 30, 45, 60, 80, 100, 120}

// sweepCores is the share of the machine's cores the process may take before the sweep
// stops: beyond it the rooms compete with each other for the CPU.
const sweepCores = 0.9

// BenchmarkSIPRoomsPerBridge is how many rooms one bridge carries in one meeting with
// clean audio. At each step SIPp places N audio-only calls (PCMU, 20 ms) into one meeting
// with one pion publisher (a beep, H.264 the rooms are not sent) and echoes every packet
// it is sent (-rtp_echo): each room speaks what it hears, so the mix-minus of every call
// decodes the meeting's loudest voices (Last-N) and every room's voice is transcoded to
// Opus. Over a 10 s window with every call up it reports the process's CPU per call (above
// the same process with the publisher alone) and the mixer's underruns: frames of a
// room's mix sent more than a frame late, or skipped (cau_sip_mix_underruns_total), and
// the share of frames later than 5 to 100 ms. The largest N without any underrun is
// logged; the steps go on, for the trend (on a shared, loaded box even 10 rooms have
// some), until a step's calls fail or the process takes sweepCores of the machine's cores.
// Run it once, alone (it is not part of make test):
//
//	go test -run '^$' -bench SIPRoomsPerBridge -benchtime 1x -timeout 30m ./sipgw
func BenchmarkSIPRoomsPerBridge(b *testing.B) {
	needSIPp(b)
	testmedia.Need(b)
	steps := roomSteps
	if env := os.Getenv("CAU_SIP_ROOMS"); env != "" {
		steps = steps[:0:0]
		for _, f := range strings.Split(env, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				b.Fatalf("CAU_SIP_ROOMS: %q is not a room count", f)
			}
			steps = append(steps, n)
		}
	}
	best, stop := 0, false
	var lines []string
	for _, n := range steps {
		if stop {
			break
		}
		var r roomsResult
		b.Run(fmt.Sprintf("rooms=%d", n), func(b *testing.B) {
			for range b.N {
				r = roomsRun(b, n)
			}
		})
		lines = append(lines, r.String())
		if r.underruns() == 0 && r.frames > 0 {
			best = max(best, n)
		}
		if r.frames == 0 || r.busy >= sweepCores*float64(runtime.NumCPU()) {
			stop = true
		}
	}
	b.Logf("rooms per bridge (one meeting, mix-minus): the largest N without underruns is %d\n%s", best,
		strings.Join(lines, "\n"))
}

// roomsResult is one step's figures.
type roomsResult struct {
	rooms              int
	idle, busy         float64 // shares of a core
	frames, late, miss float64 // mix frames sent and underruns over the window
	// within are the frames sent within 5, 10, 20, 40, 60 and 100 ms of their time.
	within       [6]float64
	load0, load1 string // /proc/loadavg before and after
}

func (r roomsResult) underruns() float64 { return r.late + r.miss }

// lateBuckets are the cau_sip_mix_lateness_seconds buckets roomsResult.within reads.
var lateBuckets = []string{"0.005", "0.01", "0.02", "0.04", "0.06", "0.1"}

func (r roomsResult) String() string {
	var over strings.Builder
	for i, le := range lateBuckets {
		if r.frames > 0 {
			ms, _ := strconv.ParseFloat(le, 64)
			fmt.Fprintf(&over, " %.0f ms %.2f%%,", 1000*ms, 100*(1-r.within[i]/r.frames))
		}
	}
	return fmt.Sprintf("N=%d: process %.0f%% of a core (publisher alone %.0f%%), %.2f%% of a core per room; "+
		"mix frames %.0f, late (>20 ms) %.0f, missing %.0f; frames later than:%s; load average %s → %s", r.rooms,
		100*r.busy, 100*r.idle, 100*(r.busy-r.idle)/float64(r.rooms), r.frames, r.late, r.miss, over.String(),
		r.load0, r.load1)
}

func roomsRun(b *testing.B, rooms int) roomsResult {
	const window = 10 * time.Second
	r := roomsResult{rooms: rooms, load0: loadAverage()}
	a, _ := startWith(b, sippConfig())
	publishH264(b, a, "rooms-0")
	r.idle = idleCPU(b, window/2)
	hold := 40*time.Second + time.Duration(rooms)*200*time.Millisecond
	run := placeCalls(b, a, rooms, "load_audio.xml", meetingsFile(b, "rooms", rooms, rooms),
		"-d", strconv.Itoa(int(hold.Milliseconds())))
	counts := func() (frames, late, miss float64, within [6]float64) {
		text := scrape(b, a)
		for i, le := range lateBuckets {
			within[i] = metricValue(text, `cau_sip_mix_lateness_seconds_bucket{le="`+le+`"}`)
		}
		return metricValue(text, "cau_sip_mix_frames_total"), metricValue(text, `cau_sip_mix_underruns_total{reason="late"}`),
			metricValue(text, `cau_sip_mix_underruns_total{reason="missing"}`), within
	}
	f0, l0, m0, w0 := counts()
	r.busy = cpuOver(b, window)
	f1, l1, m1, w1 := counts()
	r.frames, r.late, r.miss = f1-f0, l1-l0, m1-m0
	for i := range w1 {
		r.within[i] = w1[i] - w0[i]
	}
	r.load1 = loadAverage()
	if n := a.SIP().Calls(); n != rooms {
		b.Errorf("%d calls during the window, want %d; sipp:\n%s", n, rooms, run.out.Tail(2<<10))
	}
	b.ReportMetric(100*(r.busy-r.idle)/float64(rooms), "cpu-%/room")
	b.ReportMetric(100*r.idle, "idle-cpu-%")
	b.ReportMetric(r.underruns(), "underruns")
	if r.frames > 0 {
		b.ReportMetric(100*r.underruns()/r.frames, "underrun-%")
	}
	b.Log(r.String())
	return r
}

// loadAverage is the machine's 1, 5 and 15 minute load averages.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
