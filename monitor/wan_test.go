package monitor_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
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

// The impairment test: the relay link between central's bridge and a district's bridge
// crosses a WAN link that the test degrades to 8% loss each way and 200 ms each way (RTT
// 400 ms), then restores. The district bridge runs in a network namespace with a
// subscriber of its own, at a commune below the district (this test binary, re-executed:
// TestWANHelperProcess); the chair publishes at central, here. The relay link reaches the
// district only through a delaying UDP relay, and nftables in the namespace drops a share
// of the relay's packets. Signaling, the top bridge, the monitor and /metrics are the real
// app. (An endpoint of its own behind the relay would need the client to keep the ICE
// candidates that arrive before its remote description: it drops them, see the report.)

const (
	wanLossPct = 8
	wanDelay   = 200 * time.Millisecond // each way
	wanSubnet  = "10.205.0"
	wanRelay   = 40500
)

// TestWANHelperProcess is not a test: inside the namespace it runs the district bridge
// and, once told on stdin, the commune's subscriber. It stops when stdin closes.
func TestWANHelperProcess(t *testing.T) {
	env := os.Getenv("CAU_MON_WAN")
	if env == "" {
		return // run directly: nothing to do
	}
	f := strings.Split(env, "|") // control URL, bridge token, ws URL, endpoint token, udp port, announce
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := testLogger()
	port, _ := strconv.Atoi(f[4])
	b := helperBridge(ctx, sfu.Config{ICEUDPPort: port, ICETCPPort: -1, IncludeLoopback: true, Announce: []string{f[5]}, Logger: log},
		bridge.ClientConfig{SignalURL: f[0], Token: f[1], ID: "br-d1", Site: "d1"})
	if b == nil {
		return
	}
	defer b.Close()
	helperSubscribe(ctx, f[2], f[3], log)
}

// helperBridge starts, in a helper process, a bridge with cfg registered with signaling
// as reg says, until ctx ends; nil (said on stdout) if the bridge cannot start.
func helperBridge(ctx context.Context, cfg sfu.Config, reg bridge.ClientConfig) *sfu.Bridge {
	b, err := sfu.New(cfg)
	if err != nil {
		fmt.Println("HELPER bridge:", err)
		return nil
	}
	reg.Bridge, reg.Logger = b, cfg.Logger
	go func() { _ = bridge.Run(ctx, reg) }()
	return b
}

// helperSubscribe waits for the test's "go" on stdin, joins at wsURL with token (the
// commune's room, which subscribes) and stays until stdin closes.
func helperSubscribe(ctx context.Context, wsURL, token string, log *slog.Logger) {
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() {
		return
	}
	c, err := client.Dial(ctx, wsURL, token, client.Options{Loopback: true, Logger: log})
	if err != nil {
		fmt.Println("HELPER dial:", err)
		return
	}
	defer c.Close()
	fmt.Println("HELPER joined")
	for in.Scan() {
	}
}

// impairment is the WAN link's state the test changes: nftables loss in the namespace
// and the relay's delay.
type impairment struct {
	t     *testing.T
	link  *wan.Link
	relay *wan.Relay
	// onlyFrom, when set, is the one UDP port in the namespace that may send to the relay.
	onlyFrom int
}

// set applies loss (percent, each way) and delay (each way).
func (im *impairment) set(lossPct int, delay time.Duration) {
	im.t.Helper()
	im.link.SetLoss(im.t, lossPct, im.onlyFrom)
	im.relay.SetDelay(delay)
}

// downDrops is what the sockets on the way down dropped (the relay's public socket, and
// the district bridge's in the namespace) and the packets read at the relay's public
// socket so far.
func downDrops(t *testing.T, link *wan.Link, r *wan.Relay, bridgePort int) (dropped, read int64) {
	t.Helper()
	host, err := wan.SocketDrops("", r.Port())
	if err != nil {
		t.Fatal(err)
	}
	ns, err := wan.SocketDrops(link.NS, bridgePort)
	if err != nil {
		t.Fatal(err)
	}
	return int64(host + ns), r.Down()
}

// wanApp is the real app at central on the host's side of link, with its signer.
type wanApp struct {
	*app.App
	ws string // ws://host:port
}

// wanHold is the WAN tests' grade hold (monitor.Config.Hold), shorter than the 10-s
// default: each phase of those tests waits for every link to grade good again, which is
// the loss window (5 s) plus the hold; what they check of the hold itself (poor at once,
// good only after the window clears) does not depend on its length.
const wanHold = 3 * time.Second

// startWANApp starts the app on link's host address (ICE on udpPort; 0: any) with key.
func startWANApp(t *testing.T, link *wan.Link, key string, udpPort int) *wanApp {
	t.Helper()
	tree := testTree(t)
	a, err := app.Start(t.Context(), app.Config{HTTPAddr: link.HostIP + ":0", ICEUDPPort: udpPort, ICETCPPort: -1, Dev: true,
		TokenKey: key, Site: tree.Root().ID, Ancestry: tree.Ancestors, Tree: tree, MonitorHold: wanHold, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return &wanApp{App: a, ws: "ws://" + strings.TrimPrefix(a.URL(), "http://")}
}

// sign signs c (a join token unless c.Use says otherwise) for an hour.
func (a *wanApp) sign(t *testing.T, c auth.Claims) string {
	t.Helper()
	if c.Use == "" {
		c.Use = auth.UseJoin
	}
	tok, err := a.Keys().Sign(c, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// chairPublishes joins the meeting as its chair at central and publishes one video stream
// of fps×packets packets a second.
func (a *wanApp) chairPublishes(t *testing.T, meeting string, fps, packets int, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	chair, err := client.Dial(ctx, a.ws+"/ws", a.sign(t, auth.Claims{Meeting: meeting, Site: "central", Name: "Chủ trì", Role: auth.RoleChair}),
		client.Options{Loopback: true, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(chair.Close)
	if _, err := chair.PublishWith(ctx, client.PublishOptions{FPS: fps, PacketsPerFrame: packets, PayloadBytes: 200, NoAudio: true}); err != nil {
		t.Fatal(err)
	}
}

// startHelper re-executes this test binary in link's namespace as the helper test named
// run, with env; it waits on its stdin for "go" (see goHelper). Its output is logged if
// the test fails.
func startHelper(t *testing.T, link *wan.Link, run string, env ...string) io.WriteCloser {
	t.Helper()
	args := link.Exec(os.Args[0], "-test.run=^"+run+"$", "-test.v")
	helper := exec.Command(args[0], args[1:]...)
	helper.Env = append(os.Environ(), env...)
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
	return stdin
}

// goHelper tells a helper that the chair publishes: it may subscribe now.
func goHelper(t *testing.T, stdin io.Writer) {
	t.Helper()
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
}

func TestImpairedRelayLinkGradesPoorThenGood(t *testing.T) {
	if testing.Short() {
		t.Skip("WAN test skipped in -short mode (testing.Short)")
	}
	wan.Require(t)
	link := wan.New(t, wan.Config{Subnet: wanSubnet, RelayPort: wanRelay, LossPct: 0})
	a := startWANApp(t, link, "monitor-wan-test-key-0123456789-0123456789", 0)
	wsBase := a.ws
	sign := func(c auth.Claims) string { return a.sign(t, c) }

	// The district bridge and the commune's subscriber, in the namespace.
	bridgePort := 42000 + rand.IntN(1000)
	relay := link.NewRelay(t, &net.UDPAddr{IP: net.ParseIP(link.PeerIP), Port: bridgePort}, 0)
	im := &impairment{t: t, link: link, relay: relay}
	im.set(0, 0) // the relay's port range
	stdin := startHelper(t, link, "TestWANHelperProcess", "CAU_MON_WAN="+strings.Join([]string{
		wsBase + "/bridge", sign(control.BridgeClaims(ids.SiteID("d1"), "")),
		wsBase + "/ws", sign(auth.Claims{Meeting: "wan", Site: "c1", Name: "Xã 1 room", Role: auth.RoleRoom}),
		strconv.Itoa(bridgePort), relay.Addr()}, "|"))
	eventually(t, 20*time.Second, func() string {
		if _, ok := a.Signaling().Bridges()["br-d1"]; !ok {
			return "the district bridge has not registered"
		}
		return ""
	})

	// The chair at central publishes one video stream of 600 packets a second: the relay
	// link's figures come from the district's receiver reports on it, per stream.
	a.chairPublishes(t, "wan", 30, 20, 15*time.Second)
	goHelper(t, stdin)
	mon := a.Monitor()
	siteView := func(id string) *monitor.SiteView {
		if v := mon.Snapshot().Sites[id]; v != nil {
			return v
		}
		return &monitor.SiteView{Grade: monitor.GradeUnknown, UplinkGrade: monitor.GradeUnknown}
	}
	relayDown := func() monitor.RelayView {
		for _, r := range mon.Snapshot().Relays {
			if r.Bridge == "local" && r.Peer == "br-d1" {
				return r
			}
		}
		return monitor.RelayView{Grade: monitor.GradeUnknown}
	}
	eventually(t, 30*time.Second, func() string {
		d, c, r := siteView("d1"), siteView("c1"), relayDown()
		if d.Grade != monitor.GradeGood || c.Grade != monitor.GradeGood || r.Grade != monitor.GradeGood || r.RTTMs == 0 {
			return fmt.Sprintf("on the clean link: d1 %v (uplink %v), c1 %v, relay central→district %v (RTT %.0f ms, %d streams); reasons %q %q",
				d.Grade, d.UplinkGrade, c.Grade, r.Grade, r.RTTMs, r.Streams, d.Reasons, c.Reasons)
		}
		return ""
	})
	cleanRTT := relayDown().RTTMs

	// Impair: 8% loss and 200 ms each way.
	impaired := time.Now()
	im.set(wanLossPct, wanDelay)
	drops0, read0 := downDrops(t, link, relay, bridgePort)
	var poorAfter time.Duration
	eventually(t, 10*time.Second, func() string {
		if v := siteView("d1"); v.Grade != monitor.GradePoor {
			return fmt.Sprintf("d1 is %v after %v of impairment (reasons %q)", v.Grade, time.Since(impaired).Round(time.Millisecond), v.Reasons)
		}
		poorAfter = time.Since(impaired)
		return ""
	})
	t.Logf("GRADE: d1 poor %v after its relay link was impaired (%d%% loss, %v each way)", poorAfter.Round(time.Millisecond), wanLossPct, wanDelay)

	// The metrics, once the 5-s window holds only impaired samples: averaged over 10 scrapes.
	time.Sleep(time.Until(impaired.Add(7 * time.Second)))
	var rtt, loss, jitter float64
	communeWorst := monitor.GradeUnknown
	const scrapes = 10
	rl := []string{`bridge="local"`, `peer_bridge="br-d1"`, `site="central"`, `peer_site="d1"`, `direction="down"`}
	for i := range scrapes {
		m := scrape(t, a.URL())
		rtt += m.get(t, "cau_relay_rtt_seconds", rl...)
		loss += m.get(t, "cau_relay_loss_ratio", rl...)
		jitter += m.get(t, "cau_relay_jitter_seconds", rl...)
		if g := m.get(t, "cau_site_grade", `site="d1"`, `level="district"`); g != 2 {
			t.Errorf("cau_site_grade{site=d1} %v under impairment, want 2 (poor)", g)
		}
		communeWorst = monitor.Worst(communeWorst, siteView("c1").Grade)
		if i < scrapes-1 {
			time.Sleep(time.Second)
		}
	}
	rtt, loss, jitter = rtt/scrapes, loss/scrapes, jitter/scrapes
	// Loss the test did not configure but the link really had: datagrams the sockets on
	// the way down dropped because the loaded machine did not read them in time (seen in
	// CI: 11% measured over 8% configured). The monitor is right to count them.
	drops1, read1 := downDrops(t, link, relay, bridgePort)
	hostLoss := 0.0
	if sent := (read1 - read0) + (drops1 - drops0); sent > 0 {
		hostLoss = float64(drops1-drops0) / float64(sent)
	}
	t.Logf("socket drops on the way down while impaired: %d of %d datagrams (%.2f%%)", drops1-drops0, (read1-read0)+(drops1-drops0), 100*hostLoss)
	wantRTT, wantLoss := 2*wanDelay.Seconds(), float64(wanLossPct)/100
	t.Logf("METRICS under impairment (clean RTT %.1f ms): cau_relay_rtt_seconds %.3f (want %.3f, %+.1f%%); "+
		"cau_relay_loss_ratio %.4f (want %.2f, %+.1f%%); cau_relay_jitter_seconds %.4f; commune c1 below: %v (path %v)",
		cleanRTT, rtt, wantRTT, 100*(rtt/wantRTT-1), loss, wantLoss, 100*(loss/wantLoss-1), jitter, communeWorst, siteView("c1").PathGrade)
	if rtt < 0.8*wantRTT || rtt > 1.2*wantRTT {
		t.Errorf("cau_relay_rtt_seconds %.3f, want %.3f ± 20%%", rtt, wantRTT)
	}
	if hi := 1.2*wantLoss + hostLoss; loss < 0.8*wantLoss || loss > hi {
		t.Errorf("cau_relay_loss_ratio %.4f, want %.2f − 20%% to %.4f (+20%%, plus %.2f%% the sockets dropped)", loss, wantLoss, hi, 100*hostLoss)
	}
	// The commune's own link is clean: what it loses comes down the relay path, which the
	// district's grade already shows.
	if communeWorst >= monitor.GradePoor {
		t.Errorf("commune c1 graded %v under the district's bad relay link, want its own (clean) grade", communeWorst)
	}

	// Restore the link: good again after the window clears and the hold (wanHold) passes.
	restored := time.Now()
	im.set(0, 0)
	var goodAfter time.Duration
	eventually(t, 30*time.Second, func() string {
		if v := siteView("d1"); v.Grade != monitor.GradeGood {
			return fmt.Sprintf("d1 is %v %v after the link was restored (reasons %q); relays %+v; links %+v",
				v.Grade, time.Since(restored).Round(time.Millisecond), v.Reasons, a.Signaling().RelayStats(), a.Signaling().Links())
		}
		goodAfter = time.Since(restored)
		return ""
	})
	t.Logf("GRADE: d1 good again %v after the link was restored", goodAfter.Round(time.Millisecond))
	alerts := mon.Snapshot().Alerts
	if len(alerts) == 0 || alerts[0].Subject != "d1" || alerts[0].Open() || alerts[0].EndReason != "recovered" {
		t.Errorf("alerts %+v, want d1's alert, closed as recovered", alerts)
	}
	if dir := os.Getenv("CAU_ARTIFACTS"); dir != "" {
		_ = os.WriteFile(dir+"/monitor-wan.txt", []byte(fmt.Sprintf("poor after %v\ngood after %v\nrelay rtt %.3f s\nrelay loss %.4f\n",
			poorAfter, goodAfter, rtt, loss)), 0o644)
	}
}
