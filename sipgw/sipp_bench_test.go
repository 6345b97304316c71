package sipgw_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/internal/testmedia"
	"github.com/cau-project/cau/internal/testutil"
)

// processCPU is the CPU time (user and system) the test process has used: the whole Cầu
// server runs in it.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSIPCallCPU is the server's CPU per SIP call with its media: SIPp places the
// calls (10 rooms a meeting, one H.264 publisher with a beep in each meeting) and echoes
// every RTP packet it receives (-rtp_echo), so each room sends the gateway as much audio
// and video as it is sent: the mix-minus, G.711 ⇄ Opus both ways, the room's video
// forwarded to the meeting and the meeting's to the room. Over a steady window it reports
// the share of a core per call above the same process idle with the publishers alone
// (reported too, the reference of the same run). Run it once:
//
//	go test -run '^$' -bench SIPCallCPU -benchtime 1x ./sipgw
func BenchmarkSIPCallCPU(b *testing.B) {
	needSIPp(b)
	testmedia.Need(b)
	for _, calls := range []int{10, 40} {
		b.Run(fmt.Sprintf("calls=%d", calls), func(b *testing.B) {
			for range b.N {
				callCPU(b, calls)
			}
		})
	}
}

func callCPU(b *testing.B, calls int) {
	const window = 10 * time.Second
	a, _ := startWith(b, sippConfig())
	meetings := (calls + 9) / 10
	for i := range meetings {
		publishH264(b, a, "cpu-"+strconv.Itoa(i))
	}
	idle := idleCPU(b, window/2)
	run := placeCalls(b, a, calls, "load.xml", meetingsFile(b, "cpu", calls, 10), "-aa")
	before := packetCounts(b, a)
	busy := cpuOver(b, window)
	after := packetCounts(b, a)
	if n := a.SIP().Calls(); n != calls {
		b.Fatalf("%d calls during the window, want %d (the scenario holds them 30 s)", n, calls)
	}
	b.ReportMetric(100*(busy-idle)/float64(calls), "cpu-%/call")
	b.ReportMetric(100*idle, "idle-cpu-%")
	b.ReportMetric(100*busy, "busy-cpu-%")
	perCall := func(k string) float64 { return (after[k] - before[k]) / window.Seconds() / float64(calls) }
	b.ReportMetric(perCall(`direction="to_room",kind="audio"`), "audio-pps/call")
	b.ReportMetric(perCall(`direction="to_room",kind="video"`), "video-pps/call")
	b.Logf("%d calls: process %.0f%% of a core (idle with the publishers: %.0f%%); packets a second per call, "+
		"to the room %.0f audio %.0f video, from it %.0f audio %.0f video", calls, 100*busy, 100*idle,
		perCall(`direction="to_room",kind="audio"`), perCall(`direction="to_room",kind="video"`),
		perCall(`direction="from_room",kind="audio"`), perCall(`direction="from_room",kind="video"`))
	// The figures stand on the window, when every call was up; how the calls ended
	// after it is the tests' business (TestSIPp100Calls), here only logged.
	if err := run.cmd.Wait(); err != nil {
		errs, _ := os.ReadFile(filepath.Join(run.dir, "errors.log"))
		b.Logf("sipp after the window: %v\n%.2000s", err, errs)
	}
}

// cpuOver is the share of a core the process used over d from now.
func cpuOver(b *testing.B, d time.Duration) float64 {
	cpu0, t0 := processCPU(b), time.Now()
	time.Sleep(d)
	return float64(processCPU(b)-cpu0) / float64(time.Since(t0))
}

// idleCPU is the process's share of a core over d with the publishers alone, after they
// settle.
func idleCPU(b *testing.B, d time.Duration) float64 {
	time.Sleep(2 * time.Second)
	return cpuOver(b, d)
}

// placeCalls has SIPp place calls with scenario (in testdata/sipp), the meetings from
// the injection file inf, echoing every RTP packet it receives (-rtp_echo), and waits
// until the gateway carries them all and the bridge has renegotiated.
func placeCalls(b *testing.B, a *app.App, calls int, scenario, inf string, args ...string) *sippRun {
	mp := 20000 + 4*rand.IntN(2000) // sipp's media ports: mp (audio) and mp+2 (video)
	all := append([]string{"-m", strconv.Itoa(calls), "-l", strconv.Itoa(calls), "-r", "20", "-inf", inf,
		"-rtp_echo", "-mp", strconv.Itoa(mp)}, args...)
	run := startSIPp(b, a.SIP().Addr(), scenario, "u1", "unused", all...)
	testutil.Eventually(b, 25*time.Second+time.Duration(calls)*100*time.Millisecond, func() string {
		if n := a.SIP().Calls(); n < calls {
			return fmt.Sprintf("%d of %d calls up; sipp:\n%s", n, calls, run.out.Tail(2<<10))
		}
		return ""
	})
	time.Sleep(2 * time.Second) // the bridge's renegotiations after the last join
	return run
}

// packetCounts reads cau_sip_rtp_packets_total by its labels.
func packetCounts(b *testing.B, a *app.App) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(grep(scrape(b, a), "cau_sip_rtp_packets_total{"), "\n") {
		labels, v, ok := strings.Cut(strings.TrimPrefix(line, "cau_sip_rtp_packets_total{"), "} ")
		if f, err := strconv.ParseFloat(v, 64); ok && err == nil {
			out[labels] = f
		}
	}
	return out
}
