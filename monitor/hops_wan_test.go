package monitor_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/bridge"
	"github.com/cau-project/cau/bridge/control"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/internal/wan"
	"github.com/cau-project/cau/monitor"
	"github.com/cau-project/cau/sfu"
)

// The per-hop test: a chain of three hops, each impaired in turn, alone.
//
//	chair (central) ─access─ central bridge ─relay (WAN)─ district bridge ─access─ commune room (c1)
//
// The district bridge and the commune's room (subscribing) run in a network
// namespace (TestHopHelperProcess); the relay link crosses the delaying UDP relay, whose
// loss and delay the test sets; the commune's access link is the namespace's loopback,
// where an nftables rule drops a share of the UDP one way. For each impairment, only the
// impaired hop may be graded poor, each hop's loss must be within ±2 points of what was
// injected on it, the relay's RTT within −10%…+30% (see hopsRTTLate) of the delay the relay
// really held packets each way (100 ms asked; timers fire late on a loaded box) plus the
// clean link's RTT, with no sample above twice that, and the sites beyond the hop must be marked affected, not poor.

const (
	hopsSubnet  = "10.206.0"
	hopsRelay   = 40600
	hopsLossPct = 8
	hopsDelay   = 100 * time.Millisecond // each way on the relay link
	hopsTolPts  = 2.0                    // loss tolerance, percentage points
	hopsRTTTol  = 0.10
	// hopsRTTLate is the RTT's allowance above the truth: on this 2-core box at a load of
	// 30, RTCP waits for the bridges' goroutines after its DLSR is stamped (+21% seen; +1.5%
	// at a load of 12). The 2× bound on any sample still catches a mismatched report.
	hopsRTTLate  = 0.30
	hopsScrapes  = 10
	hopsSettle   = 7 * time.Second // the 5-s window holds only impaired samples
	hopsMaxPhase = 40 * time.Second
)

// TestHopHelperProcess is not a test: inside the namespace it runs the district bridge
// and, once told on stdin, the commune's room, which subscribes. It stops
// when stdin closes.
func TestHopHelperProcess(t *testing.T) {
	env := os.Getenv("CAU_MON_HOPS")
	if env == "" {
		return // run directly: nothing to do
	}
	f := strings.Split(env, "|") // control URL, bridge token, ws URL, endpoint token, udp port, announce
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := testLogger()
	port, _ := strconv.Atoi(f[4])
	b, err := sfu.New(sfu.Config{ICEUDPPort: port, ICETCPPort: -1, IncludeLoopback: true, Announce: []string{f[5]}, Logger: log})
	if err != nil {
		fmt.Println("HELPER bridge:", err)
		return
	}
	defer b.Close()
	go func() {
		_ = bridge.Run(ctx, bridge.ClientConfig{SignalURL: f[0], Token: f[1], ID: "br-d1", Site: "d1", Bridge: b, Logger: log})
	}()
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() {
		return
	}
	c, err := client.Dial(ctx, f[2], f[3], client.Options{Loopback: true, Logger: log})
	if err != nil {
		fmt.Println("HELPER dial:", err)
		return
	}
	defer c.Close()
	fmt.Println("HELPER joined")
	for in.Scan() {
	}
}

// hopID names one hop direction as the metrics do.
type hopID struct{ site, kind, dir string }

func (h hopID) String() string { return h.site + " " + h.kind + " " + h.dir }

// The hops of the chain, in the direction the chair's media takes.
var chainHops = []hopID{
	{"central", monitor.HopAccess, "up"}, {"d1", monitor.HopRelay, "down"}, {"c1", monitor.HopAccess, "down"},
}

// hopReading is one hop direction's figures, averaged over the scrapes of a phase.
type hopReading struct {
	lossPct, rttMs, rttMaxMs, upstreamPct float64
	worstGrade                            float64
}

func TestEachHopImpairedAloneIsTheOnlyOneBlamed(t *testing.T) {
	if testing.Short() {
		t.Skip("WAN test skipped in -short mode (testing.Short)")
	}
	wan.Require(t)
	link := wan.New(t, wan.Config{Subnet: hopsSubnet, RelayPort: hopsRelay, LossPct: 0})
	tree := testTree(t)
	const key = "monitor-hops-test-key-0123456789-0123456789"
	a, err := app.Start(t.Context(), app.Config{HTTPAddr: link.HostIP + ":0", ICETCPPort: -1, Dev: true,
		TokenKey: key, Site: tree.Root().ID, Ancestry: tree.Ancestors, Tree: tree, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	sign := func(c auth.Claims) string {
		if c.Use == "" {
			c.Use = auth.UseJoin
		}
		tok, err := a.Keys().Sign(c, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	wsBase := "ws://" + strings.TrimPrefix(a.URL(), "http://")

	bridgePort := 43000 + rand.IntN(1000)
	relay := newDelayRelay(t, link, &net.UDPAddr{IP: net.ParseIP(link.PeerIP), Port: bridgePort})
	im := &impairment{t: t, link: link, relay: relay}
	im.set(0, 0)
	args := link.Exec(os.Args[0], "-test.run=^TestHopHelperProcess$", "-test.v")
	helper := exec.Command(args[0], args[1:]...)
	helper.Env = append(os.Environ(), "CAU_MON_HOPS="+strings.Join([]string{
		wsBase + "/bridge", sign(control.BridgeClaims(ids.SiteID("d1"), "")),
		wsBase + "/ws", sign(auth.Claims{Meeting: "hops", Site: "c1", Name: "Xã 1 room", Role: auth.RoleRoom}),
		strconv.Itoa(bridgePort), relay.addr()}, "|"))
	helperOut := &testutil.LockedBuffer{}
	helper.Stdout, helper.Stderr = helperOut, helperOut
	helper.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := helper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = helper.Process.Kill()
		_ = helper.Wait()
		if t.Failed() {
			t.Logf("helper output:\n%s", helperOut.Tail(20000))
		}
	})
	eventually(t, 20*time.Second, func() string {
		if _, ok := a.Signaling().Bridges()["br-d1"]; !ok {
			return "the district bridge has not registered"
		}
		return ""
	})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	chair, err := client.Dial(ctx, wsBase+"/ws", sign(auth.Claims{Meeting: "hops", Site: "central", Name: "Chủ trì", Role: auth.RoleChair}),
		client.Options{Loopback: true, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(chair.Close)
	if _, err := chair.PublishWith(ctx, client.PublishOptions{FPS: 30, PacketsPerFrame: 10, PayloadBytes: 200, NoAudio: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	mon := a.Monitor()
	hopView := func(h hopID) (monitor.HopView, bool) {
		for _, v := range mon.Snapshot().Hops {
			if v.Site == h.site && v.Kind == h.kind && v.Direction == h.dir {
				return v, true
			}
		}
		return monitor.HopView{}, false
	}
	allGood := func() string {
		for _, h := range chainHops {
			v, ok := hopView(h)
			if !ok || v.Grade != monitor.GradeGood || !v.HopMeasured {
				return fmt.Sprintf("hop %v: %+v (found %v); links %+v; relays %+v", h, v, ok, a.Signaling().Links(), a.Signaling().RelayStats())
			}
		}
		return ""
	}
	eventually(t, hopsMaxPhase, allGood)
	// The relay hop's RTT on the clean link: what the box itself adds (the delaying relay's
	// timers on a loaded machine); the true RTT under impairment is the injected delay plus it.
	var baseRTT float64
	for range 3 {
		if v, ok := hopView(chainHops[1]); ok {
			baseRTT += v.RTTMs / 3
		}
		time.Sleep(time.Second)
	}

	// accessRule drops a share of the commune's loopback UDP one way: "sport" what the
	// bridge sends the room (its downlink), "dport" what the room sends its bridge.
	accessRule := func(dir string, pct int) {
		rules := "table inet hop\ndelete table inet hop\n"
		if pct > 0 {
			rules += fmt.Sprintf("table inet hop {\n\tchain out {\n\t\ttype filter hook output priority 0;\n"+
				"\t\toif lo udp %s %d numgen random mod 100 < %d drop\n\t}\n}\n", dir, bridgePort, pct)
		}
		args := link.Exec("nft", "-f", "-")
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stdin = strings.NewReader(rules)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft: %v\n%s", err, out)
		}
	}

	type phase struct {
		name     string
		faulty   []hopID // the impaired hop's directions
		affected string  // the site marked affected (receives the loss already missing), "" if none
		apply    func(on bool)
	}
	phases := []phase{
		{"relay central↔d1: 8% loss, 100 ms each way", []hopID{chainHops[1]}, "c1",
			func(on bool) {
				if on {
					im.set(hopsLossPct, hopsDelay)
				} else {
					im.set(0, 0)
				}
			}},
		{"access c1 down: 8% loss", []hopID{chainHops[2]}, "",
			func(on bool) { accessRule("sport", map[bool]int{true: hopsLossPct}[on]) }},
	}
	var table strings.Builder
	fmt.Fprintf(&table, "%-44s %-18s %9s %9s %9s %9s %9s %6s\n", "impairment", "hop", "inj.loss", "loss", "upstream",
		"held RTT", "RTT", "grade")
	for _, ph := range phases {
		faulty := map[hopID]bool{}
		for _, h := range ph.faulty {
			faulty[h] = true
		}
		start := time.Now()
		ph.apply(true)
		eventually(t, hopsMaxPhase, func() string {
			for _, h := range ph.faulty {
				if v, _ := hopView(h); v.Grade != monitor.GradePoor {
					return fmt.Sprintf("%s: hop %v graded %v after %v (%+v)", ph.name, h, v.Grade, time.Since(start).Round(time.Second), v)
				}
			}
			return ""
		})
		time.Sleep(time.Until(start.Add(hopsSettle)))
		_, holdNs, holds := relay.meanHold(0, 0)
		got := map[hopID]*hopReading{}
		affected := map[string]float64{}
		for i := range hopsScrapes {
			m := scrapeSame(t, a.URL(), mon)
			for _, h := range chainHops {
				l := []string{`site="` + h.site + `"`, `kind="` + h.kind + `"`, `direction="` + h.dir + `"`}
				r := got[h]
				if r == nil {
					r = &hopReading{}
					got[h] = r
				}
				r.lossPct += 100 * m.get(t, "cau_hop_loss_ratio", l...) / hopsScrapes
				if h.kind == monitor.HopRelay { // the access links' RTT is loopback's, and rides their downlink
					r.rttMs += 1e3 * m.get(t, "cau_hop_rtt_seconds", l...) / hopsScrapes
				}
				r.worstGrade = max(r.worstGrade, m.get(t, "cau_hop_grade", l...))
				if h.kind == monitor.HopAccess && h.dir == "down" {
					r.upstreamPct += 100 * m.get(t, "cau_hop_upstream_loss_ratio", l...) / hopsScrapes
				}
				if v, ok := hopView(h); ok {
					r.rttMaxMs = max(r.rttMaxMs, v.RTTMaxMs)
				}
			}
			for _, s := range []string{"c1"} {
				affected[s] = max(affected[s], m.get(t, "cau_site_affected", `site="`+s+`"`))
			}
			if i < hopsScrapes-1 {
				time.Sleep(time.Second)
			}
		}
		// The relay link's true RTT: the clean link's plus what the relay really held each
		// packet each way while the figures were read (timers fire late on a loaded box).
		hold, _, _ := relay.meanHold(holdNs, holds)
		for _, h := range chainHops {
			r := got[h]
			injLoss, injRTT := 0.0, 0.0
			if faulty[h] {
				injLoss = hopsLossPct
			}
			if h.kind == monitor.HopRelay && ph.name[:5] == "relay" {
				injRTT = 2 * float64(hold) / float64(time.Millisecond)
			}
			fmt.Fprintf(&table, "%-44s %-18s %8.1f%% %8.1f%% %8.1f%% %7.1fms %7.1fms %6s\n", ph.name, h, injLoss, r.lossPct,
				r.upstreamPct, injRTT, r.rttMs, monitor.Grade(r.worstGrade))
			if math.Abs(r.lossPct-injLoss) > hopsTolPts {
				t.Errorf("%s: hop %v loss %.1f%%, injected %.0f%% (± %.0f points)", ph.name, h, r.lossPct, injLoss, hopsTolPts)
			}
			if faulty[h] && r.worstGrade != float64(monitor.GradePoor) {
				t.Errorf("%s: the impaired hop %v graded %v, want poor", ph.name, h, monitor.Grade(r.worstGrade))
			}
			if !faulty[h] && r.worstGrade >= float64(monitor.GradePoor) {
				t.Errorf("%s: hop %v graded %v, but it is not impaired", ph.name, h, monitor.Grade(r.worstGrade))
			}
			if injRTT > 0 {
				want := injRTT + baseRTT
				if r.rttMs < (1-hopsRTTTol)*want || r.rttMs > (1+hopsRTTLate)*want {
					t.Errorf("%s: hop %v RTT %.1f ms, relay held %.1f ms + %.1f ms clean (−%.0f%% … +%.0f%%)", ph.name, h, r.rttMs,
						injRTT, baseRTT, 100*hopsRTTTol, 100*hopsRTTLate)
				}
				if r.rttMaxMs > 2*want {
					t.Errorf("%s: hop %v RTT sample %.1f ms, over twice the true %.0f ms", ph.name, h, r.rttMaxMs, want)
				}
			}
		}
		for _, s := range []string{"c1"} {
			want := 0.0
			if s == ph.affected {
				want = 1
			}
			if affected[s] != want {
				t.Errorf("%s: cau_site_affected{site=%q} %v, want %v", ph.name, s, affected[s], want)
			}
		}
		ph.apply(false)
		eventually(t, hopsMaxPhase, allGood)
	}
	t.Logf("INJECTED VS MEASURED (mean of %d scrapes, 5-s window; relay RTT on the clean link %.1f ms):\n%s",
		hopsScrapes, baseRTT, table.String())
	if dir := os.Getenv("CAU_ARTIFACTS"); dir != "" {
		_ = os.WriteFile(dir+"/monitor-hops.txt", []byte(table.String()), 0o644)
	}
}

// scrapeSame scrapes /metrics twice at once, retrying until both scrapes fall within one
// snapshot, and fails the test if those two differ: every figure is the monitor's, not
// computed per reader.
func scrapeSame(t *testing.T, base string, mon *monitor.Monitor) exposition {
	t.Helper()
	for range 10 {
		at := mon.Snapshot().At
		var pages [2]exposition
		var wg sync.WaitGroup
		for i := range pages {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pages[i] = scrape(t, base)
			}()
		}
		wg.Wait()
		if !mon.Snapshot().At.Equal(at) {
			continue // a sample landed between: try again
		}
		a, b := hopLines(pages[0]), hopLines(pages[1])
		if a != b {
			t.Fatalf("two scrapers of one snapshot read different hop figures:\n%s\n---\n%s", a, b)
		}
		return pages[0]
	}
	t.Fatal("no two scrapes within one snapshot in 10 tries")
	return nil
}

func hopLines(e exposition) string {
	var out []string
	for _, l := range e {
		if strings.HasPrefix(l, "cau_hop_") || strings.HasPrefix(l, "cau_relay_") || strings.HasPrefix(l, "cau_site_") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
