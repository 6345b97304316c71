package sipgw_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/sipgw"
)

// SIPp (Debian package sip-tester) plays the scenarios in testdata/sipp/*.xml against the
// gateway: what a room codec's SIP stack does that baresip does not, scripted message by
// message (late offer, re-INVITE on one TCP connection, session timers, CANCEL, malformed
// requests, load).

// needSIPp returns sipp's path, or skips the test (fails it under CI=true: .ci/run
// installs sip-tester).
func needSIPp(t testing.TB) string {
	t.Helper()
	return testutil.Tool(t, "sip-tester", "sipp")
}

// sippRun is one run of sipp.
type sippRun struct {
	cmd *exec.Cmd
	dir string
	out *testutil.LockedBuffer
}

// startSIPp starts sipp with scenario (a file in testdata/sipp) against the gateway, as a
// UAC over transport ("u1": UDP, "t1": TCP, one connection), with more flags in args.
func startSIPp(t testing.TB, gw netip.AddrPort, scenario, transport, meeting string, args ...string) *sippRun {
	t.Helper()
	bin := needSIPp(t)
	sf, err := filepath.Abs(filepath.Join("testdata", "sipp", scenario))
	if err != nil {
		t.Fatal(err)
	}
	r := &sippRun{dir: t.TempDir(), out: &testutil.LockedBuffer{}}
	all := append([]string{"-sf", sf, "-t", transport, "-i", "127.0.0.1", "-s", meeting, "-nostdin",
		"-trace_err", "-error_file", filepath.Join(r.dir, "errors.log"),
		"-trace_msg", "-message_file", filepath.Join(r.dir, "messages.log"),
		"-timeout", "90s", "-timeout_error"}, args...)
	all = append(all, gw.String())
	r.cmd = exec.Command(bin, all...)
	r.cmd.Dir = r.dir
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.cmd.Process.Kill(); _ = r.cmd.Wait() })
	return r
}

// wait waits for sipp to end and fails the test, with sipp's logs, unless every call of
// the scenario succeeded (exit status 0).
func (r *sippRun) wait(t testing.TB) {
	t.Helper()
	err := r.cmd.Wait()
	if err == nil {
		return
	}
	errs, _ := os.ReadFile(filepath.Join(r.dir, "errors.log"))
	msgs, _ := os.ReadFile(filepath.Join(r.dir, "messages.log"))
	const keep = 24 << 10
	if len(msgs) > keep {
		msgs = msgs[len(msgs)-keep:]
	}
	t.Fatalf("sipp %s: %v\nerrors:\n%s\nlast messages:\n%s\noutput:\n%s", filepath.Base(r.cmd.Args[2]), err, errs, msgs,
		r.out.Tail(8<<10))
}

// sipp runs scenario to its end (see startSIPp) and fails the test if a call failed.
func sipp(t *testing.T, gw netip.AddrPort, scenario, transport, meeting string, args ...string) {
	t.Helper()
	startSIPp(t, gw, scenario, transport, meeting, append([]string{"-m", "1"}, args...)...).wait(t)
}

// sippConfig is the gateway of the SIPp tests: session timers short enough to see
// several refreshes and an expiry in seconds (the scenarios ask for 4 s; 2 s is the least).
func sippConfig() app.SIPConfig {
	return app.SIPConfig{Addr: "127.0.0.1:0", Site: "phong-hop", MinSE: 2 * time.Second, MaxCalls: 128}
}

// noCalls waits until the gateway has no call left.
func noCalls(t testing.TB, a *app.App) {
	t.Helper()
	testutil.Eventually(t, 15*time.Second, func() string {
		if n := a.SIP().Calls(); n != 0 {
			return fmt.Sprintf("%d calls left", n)
		}
		return ""
	})
}

// TestSIPpScenarios: one SIPp scenario per behaviour; each ends with the gateway holding
// no call.
//   - late_offer: INVITE without SDP, the offer in the 200, the answer in the ACK;
//   - hold_resume (TCP): re-INVITEs sendonly then sendrecv on the call's one connection,
//     answered recvonly then sendrecv;
//   - cancel: CANCEL after the 100 Trying: 200 to the CANCEL, 487 to the INVITE;
//   - malformed: a bad SDP, an unknown required extension, a body that is not SDP, a bad
//     Session-Expires and a Request-URI that is no meeting, each answered with its own
//     error, and the gateway still answers OPTIONS;
//   - timer_refresh: the room refreshes (refresher=uac) by UPDATE and re-INVITE past
//     the interval, and the call lives on;
//   - timer_expiry: the room asks for a 4 s session and never refreshes: the gateway
//     sends BYE;
//   - timer_uas (TCP): the room asks the gateway to refresh (refresher=uas): its UPDATEs
//     come on the TCP connection of the INVITE (the room's Contact names a port where
//     nothing listens);
//   - timer_too_small: Session-Expires below Min-SE gets 422 with Min-SE; the retry with
//     a larger interval is answered.
func TestSIPpScenarios(t *testing.T) {
	needSIPp(t)
	a, _ := startWith(t, sippConfig())
	for _, c := range []struct{ scenario, transport string }{
		{"late_offer.xml", "u1"},
		{"hold_resume.xml", "t1"},
		{"cancel.xml", "u1"},
		{"malformed.xml", "u1"},
		{"timer_refresh.xml", "u1"},
		{"timer_expiry.xml", "u1"},
		{"timer_uas.xml", "t1"},
		{"timer_too_small.xml", "u1"},
	} {
		t.Run(strings.TrimSuffix(c.scenario, ".xml"), func(t *testing.T) {
			sipp(t, a.SIP().Addr(), c.scenario, c.transport, "sipp-"+strings.TrimSuffix(c.scenario, ".xml"))
			noCalls(t, a)
		})
	}
	m := scrape(t, a)
	for _, want := range []string{"cau_sip_session_refreshes_total 2", "cau_sip_session_expired_total 1"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, grep(m, "cau_sip_session"))
		}
	}
}

// meetingsFile writes a SIPp injection file that spreads calls over meetings prefix-0,
// prefix-1, …, perMeeting calls each (load.xml dials its field0).
func meetingsFile(t testing.TB, prefix string, calls, perMeeting int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("SEQUENTIAL\n")
	for i := range calls {
		fmt.Fprintf(&b, "%s-%d\n", prefix, i/perMeeting)
	}
	inf := filepath.Join(t.TempDir(), "meetings.csv")
	if err := os.WriteFile(inf, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return inf
}

// TestSIPp100Calls: SIPp holds 100 calls at once (10 meetings of 10 rooms, 25 new calls
// a second, each held 20 s): every call is answered, the gateway carries the 100 at the
// same time, and every one ends cleanly.
func TestSIPp100Calls(t *testing.T) {
	needSIPp(t)
	if testing.Short() {
		t.Skip("100 calls: not in -short")
	}
	if sipgw.RaceEnabled {
		// 200 WebRTC connections set up in 5 s are a load test: under the race detector
		// on a loaded box calls miss the 15 s setup deadline. make test runs this test
		// again without it.
		t.Skip("100 calls: not under the race detector (make test runs it without)")
	}
	a, _ := startWith(t, sippConfig())
	began := time.Now()
	run := startSIPp(t, a.SIP().Addr(), "load.xml", "u1", "unused", "-m", "100", "-l", "100", "-r", "25",
		"-inf", meetingsFile(t, "tai", 100, 10), "-aa")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	peak, reached := 0, time.Duration(0)
	for ctx.Err() == nil && peak < 100 {
		if n := a.SIP().Calls(); n > peak {
			peak = n
			reached = time.Since(began)
		}
		time.Sleep(50 * time.Millisecond)
	}
	run.wait(t)
	if peak != 100 {
		t.Errorf("the gateway carried at most %d calls at once, want 100", peak)
	}
	t.Logf("100 calls up %v after the first INVITE (25 calls/s offered)", reached)
	noCalls(t, a)
	if m := scrape(t, a); !strings.Contains(m, `cau_sip_calls_total{outcome="answered"} 100`) {
		t.Errorf("answered calls:\n%s", grep(m, "cau_sip_calls_total"))
	}
}
