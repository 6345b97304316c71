package monitor_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/bridge"
	"github.com/cau-project/cau/bridge/control"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/internal/testbrowser"
	"github.com/cau-project/cau/internal/wan"
	"github.com/cau-project/cau/monitor"
	"github.com/cau-project/cau/sfu"
)

// The per-hop test: a four-level chain of five hops, each impaired in turn, alone.
//
//	chair ─access─ central ─relay (WAN)─ province p1 ─relay─ district d1 ─relay─ commune c1 ─access─ room
//
// The province, district and commune bridges and the commune's room (subscribing) run in
// a network namespace (TestHopHelperProcess). The relay link central↔p1 crosses the
// delaying UDP relay, whose loss and delay the test sets; the other hops are impaired by
// nftables rules matching their two ends' UDP ports (the chair's access link in the
// host's namespace, the others in the helper's). For each impairment, only the impaired
// hop may be graded poor, each hop's loss must be within ±2 points (or four standard
// deviations of its sampling, when fewer packets crossed: lossSpread) of what the
// impairment really dropped on it (its nftables counters, and the receiving sockets'
// drops), the WAN relay's RTT within ±10% of the delay the relay really held packets each
// way (100 ms asked; timers fire late on a loaded box) plus the clean link's RTT, with no
// sample above twice that; the sites beyond the hop are never graded poor for it, and are
// marked affected by it (and nothing else) when its loss reaches them unrepaired; the
// console, in Chromium, marks that hop alone as the weakest of the commune's chain.

const (
	hopsSubnet  = "10.206.0"
	hopsRelay   = 40600
	hopsLossPct = 8
	// hopsRateKbps shapes the WAN relay hop below the chair's ~520 kbit/s.
	hopsRateKbps = 300
	hopsDelay    = 100 * time.Millisecond // each way on the relay link
	// hopsTolPts is the loss tolerance, percentage points: above four standard deviations
	// of the figure's sampling at the chair's 300 packets/s (lossSpread: 0.45 points at
	// 8%), which leaves room for what the truth does not count (a packet delayed past its
	// TWCC feedback is reported lost until it arrives). The tolerance grows to four
	// deviations when fewer packets crossed (a loaded box's chair sends fewer).
	hopsTolPts = 2.0
	hopsRTTTol = 0.10
	// hopsRTTLate is the RTT's allowance above the truth (the issue's ±10%). The truth is
	// what the relay really held packets plus the clean link's RTT, so a loaded box's late
	// timers do not count against the figure; its late RTCP still does (+21% seen at a load
	// of 30, +0.3% at 9). The 2× bound on any sample catches a mismatched report.
	hopsRTTLate  = 0.10
	hopsScrapes  = 10
	hopsSettle   = 7 * time.Second // the 5-s window holds only impaired samples
	hopsMaxPhase = 40 * time.Second
)

// hopRelayPorts are the relay port ranges of the district's and commune's bridges (in the
// helper's namespace, so no other process's ports), which the impairments match; the
// province's bridge, reachable from central only through the WAN relay, keeps its relay
// links on its ICE UDP port (sfu.Config.Announce).
var hopRelayPorts = map[string]sfu.PortRange{"d1": {Min: 30000, Max: 30099}, "c1": {Min: 30100, Max: 30199}}

// hopBridge is one of the helper's bridges.
type hopBridge struct {
	site string
	port int
}

// TestHopHelperProcess is not a test: inside the namespace it runs the province, district
// and commune bridges and, once told on stdin, the commune's room, which subscribes. It
// stops when stdin closes.
func TestHopHelperProcess(t *testing.T) {
	env := os.Getenv("CAU_MON_HOPS")
	if env == "" {
		return // run directly: nothing to do
	}
	// control URL, ws URL, endpoint token, the province bridge's announced address, then
	// site, udp port and token of each bridge.
	f := strings.Split(env, "|")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := testLogger()
	for i := 4; i+2 < len(f); i += 3 {
		site, token := f[i], f[i+2]
		port, _ := strconv.Atoi(f[i+1])
		cfg := sfu.Config{ICEUDPPort: port, ICETCPPort: -1, IncludeLoopback: true, RelayPorts: hopRelayPorts[site], Logger: log}
		if i == 4 { // the province's bridge: the only one the WAN relay reaches
			cfg.Announce = []string{f[3]}
		}
		b := helperBridge(ctx, cfg, bridge.ClientConfig{SignalURL: f[0], Token: token, ID: ids.BridgeID("br-" + site), Site: ids.SiteID(site)})
		if b == nil {
			return
		}
		defer b.Close()
	}
	helperSubscribe(ctx, f[1], f[2], log)
}

// hopID names one hop direction as the metrics do.
type hopID struct{ site, kind, dir string }

func (h hopID) String() string { return h.site + " " + h.kind + " " + h.dir }

// The hops of the chain, in the direction the chair's media takes.
var chainHops = []hopID{
	{"central", monitor.HopAccess, "up"}, {"p1", monitor.HopRelay, "down"}, {"d1", monitor.HopRelay, "down"},
	{"c1", monitor.HopRelay, "down"}, {"c1", monitor.HopAccess, "down"},
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
	basePort := 43000 + 10*rand.IntN(100) // central, then the helper's bridges
	centralPort := basePort
	a := startWANApp(t, link, "monitor-hops-test-key-0123456789-0123456789", centralPort)
	wsBase := a.ws
	sign := func(c auth.Claims) string { return a.sign(t, c) }

	bridges := []hopBridge{{"p1", basePort + 1}, {"d1", basePort + 2}, {"c1", basePort + 3}}
	port := map[string]int{"central": centralPort}
	for _, b := range bridges {
		port[b.site] = b.port
	}
	relay := link.NewRelay(t, &net.UDPAddr{IP: net.ParseIP(link.PeerIP), Port: port["p1"]}, 0)
	// Only the province's bridge may use the WAN relay: were another bridge of the
	// namespace to pick its announced address, its link would cross the WAN hop too.
	im := &impairment{t: t, link: link, relay: relay, onlyFrom: port["p1"]}
	im.set(0, 0)
	conf := []string{wsBase + "/bridge", wsBase + "/ws",
		sign(auth.Claims{Meeting: "hops", Site: "c1", Name: "Xã 1 room", Role: auth.RoleRoom}), relay.Addr()}
	for _, b := range bridges {
		conf = append(conf, b.site, strconv.Itoa(b.port), sign(control.BridgeClaims(ids.SiteID(b.site), "")))
	}
	stdin := startHelper(t, link, "TestHopHelperProcess", "CAU_MON_HOPS="+strings.Join(conf, "|"))
	eventually(t, 20*time.Second, func() string {
		for _, b := range bridges {
			if _, ok := a.Signaling().Bridges()["br-"+b.site]; !ok {
				return "bridge br-" + b.site + " has not registered"
			}
		}
		return ""
	})
	a.chairPublishes(t, "hops", 30, 10, 20*time.Second)
	goHelper(t, stdin)
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
	// The WAN relay hop's RTT on the clean link: what the box itself adds (the delaying
	// relay's timers on a loaded machine); the true RTT under impairment is the injected
	// delay plus it.
	var baseRTT float64
	for range 3 {
		if v, ok := hopView(chainHops[1]); ok {
			baseRTT += v.RTTMs / 3
		}
		time.Sleep(time.Second)
	}

	// drop loads (pct > 0) or removes (pct 0) one nftables rule dropping pct% of the UDP
	// that match (an nftables expression) as it arrives, in the helper's namespace (ns
	// true) or the host's; each in a table of its own. On arrival, not on the way out: a
	// datagram dropped in the output hook fails the sender's sendto with EPERM, which no
	// WAN does.
	// Its two counters, everything that matched and what it dropped, are the phase's truth
	// (counted): nftables' random drop of 8% over the ~4,000 packets of a phase's
	// scrapes strays by ±0.4 points (one deviation) from 8% by itself.
	dropTable := fmt.Sprintf("cauhops%d", os.Getpid()%100000)
	drop := func(ns bool, match string, pct int) {
		table := dropTable
		rules := fmt.Sprintf("table inet %[1]s\ndelete table inet %[1]s\n", table)
		if pct > 0 {
			rules += fmt.Sprintf("table inet %s {\n\tchain in {\n\t\ttype filter hook input priority 0;\n"+
				"\t\t%s counter\n\t\t%s numgen random mod 100 < %d counter drop\n\t}\n}\n", table, match, match, pct)
		}
		args := []string{"nft", "-f", "-"}
		if ns {
			args = link.Exec(args...)
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stdin = strings.NewReader(rules)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft: %v\n%s", err, out)
		}
	}
	t.Cleanup(func() { drop(false, "", 0) })
	onOff := func(on bool) int {
		if on {
			return hopsLossPct
		}
		return 0
	}
	// relayDown impairs the relay link from the bridge of site from to that of site to,
	// inside the namespace: only what one bridge's relay ports send the other's.
	relayPortsOf := func(site string) string {
		if r, ok := hopRelayPorts[site]; ok {
			return fmt.Sprintf("%d-%d", r.Min, r.Max)
		}
		return strconv.Itoa(port[site])
	}
	relayDown := func(from, to string) func(bool) {
		return func(on bool) {
			drop(true, fmt.Sprintf("udp sport %s udp dport %s", relayPortsOf(from), relayPortsOf(to)), onOff(on))
		}
	}

	// shape polices the WAN relay hop's UDP as it enters the namespace to hopsRateKbps
	// (nftables limit, burst 16 kB: a token bucket without a queue); the helper's
	// signaling (TCP) passes beside it. (A tbf on the whole veth dropped 68% of everything:
	// with no bandwidth estimation on relay links yet, the media and its retransmissions
	// starved the bridges' control connections, which is not this hop's figure to test.)
	// shaped reads the rule's counters: what arrived, and what it dropped.
	const rateTable = "cauhopsrate"
	shape := func(on bool) {
		rules := fmt.Sprintf("table inet %[1]s\ndelete table inet %[1]s\n", rateTable)
		if on {
			match := fmt.Sprintf("ip saddr %s udp sport %d-%d", link.HostIP, link.RelayPort, link.RelayPort+wan.RelayPeers-1)
			rules += fmt.Sprintf("table inet %s {\n\tchain in {\n\t\ttype filter hook input priority -10;\n"+
				"\t\t%s counter\n\t\t%s limit rate over %d bytes/second burst 16000 bytes counter drop\n\t}\n}\n",
				rateTable, match, match, hopsRateKbps*1000/8)
		}
		args := link.Exec("nft", "-f", "-")
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stdin = strings.NewReader(rules)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft: %v\n%s", err, out)
		}
	}
	// counters reads a table's two counters (what matched, what was dropped; in the
	// helper's namespace if ns, else the host's) as packets that passed and dropped.
	counters := func(ns bool, table string) (sent, dropped uint64) {
		args := []string{"nft", "list", "table", "inet", table}
		if ns {
			args = link.Exec(args...)
		}
		out, err := exec.Command(args[0], args[1:]...).Output()
		if err != nil {
			t.Fatalf("nft list: %v", err)
		}
		var n []uint64
		f := strings.Fields(string(out))
		for i := 0; i+2 < len(f); i++ {
			if f[i] == "counter" && f[i+1] == "packets" {
				v, err := strconv.ParseUint(f[i+2], 10, 64)
				if err != nil {
					t.Fatalf("nft counter in %q: %v", out, err)
				}
				n = append(n, v)
			}
		}
		if len(n) != 2 {
			t.Fatalf("want two counters in %q", out)
		}
		return n[0] - n[1], n[1] // arrived = passed + dropped
	}
	shaped := func() (sent, dropped uint64) { return counters(true, rateTable) }
	// counted is the truth of a phase that drops with drop(ns, …): its counters, plus
	// what the receiving sockets (on ports, in the helper's namespace if ns) dropped,
	// full on a loaded box: a loss of the hop the monitor rightly counts.
	counted := func(ns bool, ports ...int) func() (sent, dropped uint64) {
		return func() (sent, dropped uint64) {
			sent, dropped = counters(ns, dropTable)
			nsName := ""
			if ns {
				nsName = link.NS
			}
			sock, err := wan.SocketDrops(nsName, ports...)
			if err != nil {
				t.Fatal(err)
			}
			return sent - min(sent, sock), dropped + sock
		}
	}
	portsOf := func(r sfu.PortRange) []int {
		var out []int
		for p := int(r.Min); p <= int(r.Max); p++ {
			out = append(out, p)
		}
		return out
	}

	type phase struct {
		name   string
		faulty []hopID // the impaired hop's directions
		// blamed is the name the commune's room is marked affected by, when loss from the
		// impaired hop reaches it unrepaired; mustReach says it must (NACK repairs 8% on
		// a link of a millisecond, not in time over the 200-ms WAN round trip).
		blamed    string
		mustReach bool
		// delayed: the phase delays its hop (the WAN relay), whose RTT is then checked.
		delayed bool
		// truth, when set, counts what the impairment really sent and dropped (cumulative
		// packets); shaper: it is a shaper, whose loss is not set but follows from the
		// rate, and whose counters include retransmissions and RTCP (see below).
		truth  func() (sent, dropped uint64)
		shaper bool
		apply  func(on bool)
	}
	phases := []phase{
		{name: "access central up: 8% loss", faulty: []hopID{chainHops[0]}, blamed: "access central (up)",
			// What reaches central's bridge from anyone but the WAN relay: the chair. In the
			// host's namespace, in a table of its own.
			apply: func(on bool) {
				drop(false, fmt.Sprintf("udp dport %d udp sport != %d", centralPort, relay.Port()), onOff(on))
			}, truth: counted(false, centralPort)},
		{name: "relay central→p1: 8% loss, 100 ms each way", faulty: []hopID{chainHops[1]}, blamed: "relay central→p1",
			mustReach: true, delayed: true,
			apply: func(on bool) {
				if on {
					im.set(hopsLossPct, hopsDelay)
				} else {
					im.set(0, 0)
				}
			}},
		{name: fmt.Sprintf("relay central→p1: %d kbit/s policed", hopsRateKbps), faulty: []hopID{chainHops[1]},
			blamed: "relay central→p1", apply: shape, truth: shaped, shaper: true},
		{name: "relay p1→d1: 8% loss", faulty: []hopID{chainHops[2]}, blamed: "relay p1→d1", apply: relayDown("p1", "d1"),
			truth: counted(true, portsOf(hopRelayPorts["d1"])...)},
		{name: "relay d1→c1: 8% loss", faulty: []hopID{chainHops[3]}, blamed: "relay d1→c1", apply: relayDown("d1", "c1"),
			truth: counted(true, portsOf(hopRelayPorts["c1"])...)},
		{name: "access c1 down: 8% loss", faulty: []hopID{chainHops[4]},
			// What the commune's bridge's ICE UDP port sends: its room (its relay link has
			// ports of its own).
			// (The room's socket is the helper's client's, on a port not known here: its
			// drops are not counted.)
			apply: func(on bool) {
				drop(true, fmt.Sprintf("udp sport %d", port["c1"]), onOff(on))
			}, truth: counted(true)},
	}
	// A technician's console in Chromium, on the commune's detail: its chain of hops
	// from the chair must mark the impaired hop, and only it, as the weakest.
	dir, blog := testbrowser.ArtifactDir(t), &testbrowser.Log{}
	testbrowser.KeepLog(t, dir, blog)
	console := testbrowser.MustStart(t, testbrowser.Options{Log: blog, Width: 1400, Height: 1000}, "console")[0]
	techTok := sign(auth.Claims{Use: auth.UseAPI, Role: auth.RoleTechnician, Name: "Kỹ thuật", Site: "central"})
	// The commune's detail by its link (#c1), as a technician bookmarks it.
	if err := console.Run(30*time.Second, chromedp.Navigate(a.URL()+"/console?token="+url.QueryEscape(techTok)+"#c1")); err != nil {
		t.Fatal(err)
	}
	if err := console.WaitFor("the commune's chain", `window.cauConsole && window.cauConsole.detailSite === "c1" && document.querySelectorAll('#d-chain tr[data-hop]').length >= 5`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	const weakest = `[...document.querySelectorAll('#d-chain tr.weakest')].map((r) => r.dataset.hop).join(',')`

	var table strings.Builder
	fmt.Fprintf(&table, "%-44s %-18s %9s %9s %9s %9s %9s %6s\n", "impairment", "hop", "inj.loss", "loss", "upstream",
		"held RTT", "RTT", "grade")
	for pi, ph := range phases {
		faulty := map[hopID]bool{}
		for _, h := range ph.faulty {
			faulty[h] = true
		}
		start := time.Now()
		ph.apply(true)
		eventually(t, hopsMaxPhase, func() string {
			for _, h := range ph.faulty {
				if v, _ := hopView(h); v.Grade != monitor.GradePoor {
					return fmt.Sprintf("%s: hop %v graded %v after %v (%+v); all hops %+v", ph.name, h, v.Grade,
						time.Since(start).Round(time.Second), v, mon.Snapshot().Hops)
				}
			}
			return ""
		})
		// The first scrape's window starts hopsSettle − 5 s after the impairment.
		var sent0, dropped0 uint64
		time.Sleep(time.Until(start.Add(hopsSettle - 5*time.Second)))
		countFrom := time.Now()
		if ph.truth != nil {
			sent0, dropped0 = ph.truth()
		}
		// What the sockets on the WAN relay's way down dropped on a loaded machine is the
		// hop's loss too (see TestImpairedRelayLinkGradesPoorThenGood).
		sockDrops0, sockRead0 := downDrops(t, link, relay, port["p1"])
		time.Sleep(time.Until(start.Add(hopsSettle)))
		_, holdNs, holds := relay.MeanHold(0, 0)
		got := map[hopID]*hopReading{}
		affected, blamed := 0.0, map[string]bool{}
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
			affected = max(affected, m.get(t, "cau_site_affected", `site="c1"`))
			if v := mon.Snapshot().Sites["c1"]; v != nil && v.AffectedBy != "" {
				blamed[v.AffectedBy] = true
			}
			if i < hopsScrapes-1 {
				time.Sleep(time.Second)
			}
		}
		// The relay link's true RTT: the clean link's plus what the relay really held each
		// packet each way while the figures were read (timers fire late on a loaded box).
		hold, _, _ := relay.MeanHold(holdNs, holds)
		phaseLoss := float64(hopsLossPct)
		// rate is the packets a second that crossed the impaired hop while the figures were
		// read, for the loss figure's spread.
		rate := 0.0
		span := time.Since(countFrom).Seconds()
		if ph.truth != nil {
			sent1, dropped1 := ph.truth()
			if n := (sent1 - sent0) + (dropped1 - dropped0); n > 0 {
				phaseLoss = 100 * float64(dropped1-dropped0) / float64(n)
				rate = float64(n) / span
			}
		}
		sockLoss := 0.0
		if sockDrops1, sockRead1 := downDrops(t, link, relay, port["p1"]); sockRead1 > sockRead0 {
			d := sockDrops1 - sockDrops0
			sockLoss = 100 * float64(d) / float64(sockRead1-sockRead0+d)
			if ph.truth == nil {
				rate = float64(sockRead1-sockRead0+d) / span
			}
		}
		for _, h := range chainHops {
			r := got[h]
			injLoss, injRTT := 0.0, 0.0
			if faulty[h] {
				injLoss = phaseLoss
				if h == chainHops[1] {
					injLoss += sockLoss
				}
			}
			if faulty[h] && ph.delayed {
				injRTT = 2 * float64(hold) / float64(time.Millisecond)
			}
			fmt.Fprintf(&table, "%-44s %-18s %8.1f%% %8.1f%% %8.1f%% %7.1fms %7.1fms %6s", ph.name, h, injLoss, r.lossPct,
				r.upstreamPct, injRTT, r.rttMs, monitor.Grade(r.worstGrade))
			if faulty[h] {
				fmt.Fprintf(&table, "  (%.0f packets/s, spread %.2f points)", rate, lossSpread(injLoss, rate))
			}
			table.WriteString("\n")
			tol := hopsTolPts
			if faulty[h] {
				tol = max(tol, 4*lossSpread(injLoss, rate))
			}
			if ph.shaper && faulty[h] {
				// The shaper's counters include what the hop's media loss leaves out (the
				// retransmissions, half the load at this loss, and RTCP): ±15% of its drop
				// ratio (−8% measured).
				tol = max(tol, 0.15*injLoss)
			}
			if faulty[h] && rate < hopsMinRate {
				t.Errorf("%s: %.0f packets/s crossed hop %v, under the %d needed to judge its loss", ph.name, rate, h, hopsMinRate)
			}
			if math.Abs(r.lossPct-injLoss) > tol {
				t.Errorf("%s: hop %v loss %.1f%%, injected %.1f%% (± %.1f points)", ph.name, h, r.lossPct, injLoss, tol)
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
		// The console shows the impaired hop as the chain's weakest, alone.
		wantWeak := make([]string, len(ph.faulty))
		for i, h := range ph.faulty {
			wantWeak[i] = h.String()
		}
		if err := console.WaitFor("the impaired hop marked weakest", fmt.Sprintf(`window.cauConsole.detailSite === "c1" && %s === %q`,
			weakest, strings.Join(wantWeak, ",")), 15*time.Second); err != nil {
			t.Errorf("%s: console: %v; weakest rows %q", ph.name, err, testbrowser.Eval[string](t, console, weakest))
		}
		console.Shot(t, dir, fmt.Sprintf("hops-chain-phase%d", pi+1))
		// The commune is marked affected only by the impaired hop, and by it when its loss
		// reaches the room unrepaired; never poor for it (checked above).
		for name := range blamed {
			if name != ph.blamed {
				t.Errorf("%s: commune c1 marked affected by %q, want %q or nothing", ph.name, name, ph.blamed)
			}
		}
		if ph.mustReach && (affected != 1 || !blamed[ph.blamed]) {
			t.Errorf("%s: cau_site_affected{site=\"c1\"} %v, affected by %v; want 1, by %q", ph.name, affected, blamed, ph.blamed)
		}
		if ph.blamed == "" && affected != 0 {
			t.Errorf("%s: cau_site_affected{site=\"c1\"} %v, want 0", ph.name, affected)
		}
		fmt.Fprintf(&table, "%-44s %-18s commune c1 affected: %v %v\n", ph.name, "", affected, keys(blamed))
		ph.apply(false)
		eventually(t, hopsMaxPhase, allGood)
	}
	t.Logf("INJECTED VS MEASURED (mean of %d scrapes, 5-s window; injected loss as counted; relay RTT on the clean link %.1f ms):\n%s",
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

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// hopsMinRate is the fewest packets a second across an impaired hop for its loss figure
// to be judged (lossSpread: 1.1 points at 8%, a tolerance of 4.4).
const hopsMinRate = 50

// lossSpread is the standard deviation, in percentage points, of the test's loss figure
// for a hop that loses pct% of rate packets a second independently (nftables' random
// drop: a binomial count per window). The figure is the mean of hopsScrapes scrapes a
// second apart, each the loss over the monitor's 5-s window: second k of the scrapes'
// span falls in c_k of the windows, c = 1,2,3,4,5,5,5,5,5,5,4,3,2,1 (Σc = 50, Σc² = 210),
// so the mean weighs second k by c_k/50 and its variance is p(1−p)·Σc²/(50²·rate) =
// p(1−p)/(11.9·rate): 0.45 points at 8% of 300 packets/s, 0.57 at 190/s (a loaded box),
// 1.1 at 50/s. Scrapes further apart than a second overlap less and spread less.
func lossSpread(pct, rate float64) float64 {
	if rate <= 0 {
		return math.Inf(1)
	}
	const windows, width = hopsScrapes, 5
	var sumC2 float64
	for k := range windows + width - 1 {
		c := min(k+1, width, windows, windows+width-1-k)
		sumC2 += float64(c * c)
	}
	p := pct / 100
	return 100 * math.Sqrt(p*(1-p)*sumC2/(windows*width*windows*width*rate))
}
