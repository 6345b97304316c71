package signaling_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/wan"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/sfu"
	"github.com/cau-project/cau/signaling"
)

// The WAN test puts a province bridge in a network namespace, as if in a province data
// centre, joined to central by a veth pair. Its relay link to central crosses a delaying
// UDP relay (this kernel has no netem) and nftables drops 2% of the relay's packets in each
// direction inside the namespace. Nothing else reaches the province bridge from outside:
// nftables there drops UDP from central that does not come through the relay. The
// subscriber runs inside the namespace (this test binary, re-executed), so its own access
// link is clean and what it loses is what the relay link lost and NACK did not repair.

const (
	wanDelay   = 30 * time.Millisecond
	wanLossPct = 2
)

// wanSubscriberResult is what the subscriber process reports.
type wanSubscriberResult struct {
	Video, Audio client.StreamStats
	Error        string
}

// TestWANSubscriberProcess is not a test: it is the subscriber that TestWANRelayLink
// starts inside the namespace.
func TestWANSubscriberProcess(t *testing.T) {
	url, tok := os.Getenv("CAU_WAN_URL"), os.Getenv("CAU_WAN_TOKEN")
	if url == "" {
		return // run directly: nothing to do
	}
	res := wanSubscriberResult{}
	defer func() {
		b, _ := json.Marshal(res)
		fmt.Println("WANRESULT " + string(b))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, tok, client.Options{Logger: logger()})
	if err != nil {
		res.Error = err.Error()
		return
	}
	defer c.Close()
	stream := os.Getenv("CAU_WAN_STREAM")
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) {
		if v := c.Stream(stream, "video"); v != nil && v.Stats().Received > 700 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v := c.Stream(stream, "video"); v != nil {
		res.Video = v.Stats()
	}
	if a := c.Stream(stream, "audio"); a != nil {
		res.Audio = a.Stats()
	}
}

// centralAndProvinceBridge runs signaling with central's bridge (whose metrics it
// returns), serving /ws and /bridge on host (an address a namespace reaches through its
// veth), and a `cau bridge` process for the province, whose command line bridgeArgs
// builds for the signaling URL given; it returns once that bridge has registered. base
// is the server's ws:// URL without a path.
func centralAndProvinceBridge(t *testing.T, host string, bridgeArgs func(signal string) []string) (ts *testServer, metrics *sfu.Metrics, base string) {
	t.Helper()
	metrics, err := sfu.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	b, err := sfu.New(sfu.Config{ICEUDPPort: 0, ICETCPPort: -1, IncludeLoopback: true, Logger: logger(), Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	sig := signaling.New(signaling.Config{Bridge: b, Site: "central", Ancestry: testAncestry, Keys: testKeys, Logger: logger()})
	mux := http.NewServeMux()
	mux.Handle("/ws", sig)
	mux.HandleFunc("/bridge", sig.ServeBridge)
	hs := httptest.NewUnstartedServer(mux)
	ln, err := net.Listen("tcp4", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	hs.Listener = ln
	serveUntilCleanup(t, hs, sig, b)
	base = "ws://" + ln.Addr().String()

	args := bridgeArgs("http://" + ln.Addr().String())
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "CAU_TOKEN_KEY="+string(testKeys.Current))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	eventually(t, 20*time.Second, func() string {
		if len(sig.Bridges()) != 2 {
			return "the province bridge has not registered"
		}
		return ""
	})
	return &testServer{keys: testKeys, ws: base + "/ws", sig: sig}, metrics, base
}

func TestWANRelayLink(t *testing.T) {
	wan.Require(t)
	link := wan.New(t, wan.Config{Subnet: "10.201.0", RelayPort: 40000, LossPct: wanLossPct})
	wanHost := link.HostIP

	// The province bridge, in the namespace, announcing the relay as its WAN address.
	bridgePort := 41000 + rand.IntN(1000)
	relay := link.NewRelay(t, &net.UDPAddr{IP: net.ParseIP(link.PeerIP), Port: bridgePort}, wanDelay)
	ts, metrics, base := centralAndProvinceBridge(t, wanHost, func(signal string) []string {
		return link.Exec(buildCau(t), "bridge", "--site", "prov", "--id", "br-prov",
			"--signal", signal, "--udp-port", strconv.Itoa(bridgePort), "--tcp-port", "-1",
			"--announce", relay.Addr(), "--dev", "--log-level", wanLogLevel())
	})
	keys, sig := ts.keys, ts.sig
	chair := ts.join(t, "wan", "central", "chair")
	if err := chair.Publish(context.Background()); err != nil {
		t.Fatal(err)
	}
	tok, err := keys.Sign(auth.Claims{Use: auth.UseJoin, Meeting: "wan", Site: "prov", Name: "province", Role: auth.RoleParticipant}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	subArgs := link.Exec(os.Args[0], "-test.run=^TestWANSubscriberProcess$", "-test.v")
	sub := exec.Command(subArgs[0], subArgs[1:]...)
	sub.Env = append(os.Environ(), "CAU_WAN_URL="+base+"/ws", "CAU_WAN_TOKEN="+tok,
		"CAU_WAN_STREAM="+chair.Self.Streams[protocol.SourceCamera])
	// Sample the relay link's own figures while the subscriber watches.
	var relayStat protocol.RelayStat
	var linkMu sync.Mutex
	stopSampling := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(500 * time.Millisecond):
			}
			for _, st := range sig.RelayStats()["local"] {
				if st.Peer.Relay.Bridge == "br-prov" && st.StreamsSent > 0 && st.RTTMs > 0 {
					linkMu.Lock()
					relayStat = st
					linkMu.Unlock()
				}
			}
		}
	}()
	out, err := sub.CombinedOutput()
	close(stopSampling)
	if err != nil {
		t.Fatalf("subscriber process: %v\n%s", err, out)
	}
	var res wanSubscriberResult
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "WANRESULT "); ok {
			if err := json.Unmarshal([]byte(rest), &res); err != nil {
				t.Fatal(err)
			}
		}
	}
	if res.Error != "" {
		t.Fatalf("subscriber: %s", res.Error)
	}
	if res.Video.Received < 600 {
		t.Fatalf("subscriber received %d video packets through the WAN link, want ≥ 600\n%s", res.Video.Received, out)
	}
	// With 2% loss each way and 30 ms each way, NACK/RTX over the relay must repair the
	// video loss. Audio is the control run: the same link at the same time, without NACK
	// (Opus is not retransmitted), so its loss is the raw loss the impairment caused.
	vl, al := 100*res.Video.LossFraction(), 100*res.Audio.LossFraction()
	var sentMetric dto.Metric
	if err := metrics.Retransmissions.WithLabelValues("sent").Write(&sentMetric); err != nil {
		t.Fatal(err)
	}
	resent := sentMetric.GetCounter().GetValue()
	t.Logf("WAN %v each way, %d%% loss each way: video residual loss %.2f%% (%d/%d), audio (no NACK) loss %.2f%% (%d/%d), video jitter %.1f ms, %.0f packets retransmitted by central",
		wanDelay, wanLossPct, vl, res.Video.Lost, res.Video.Expected, al, res.Audio.Lost, res.Audio.Expected, res.Video.JitterMs, resent)
	if res.Audio.Received == 0 {
		t.Fatal("no audio through the WAN link")
	}
	if al < float64(wanLossPct)/4 {
		t.Fatalf("audio lost %.2f%%: the impairment did not drop the %d%% it should, so the video figure proves nothing", al, wanLossPct)
	}
	if resent == 0 {
		t.Fatal("central retransmitted nothing over the relay link")
	}
	if vl > 0.3 {
		t.Fatalf("video residual loss %.2f%% > 0.3%%: NACK did not recover the relay's %d%% loss", vl, wanLossPct)
	}
	// The relay link's own figures (for the technicians' console): central's relay peer
	// towards the province hears the province bridge's receiver reports.
	linkMu.Lock()
	defer linkMu.Unlock()
	t.Logf("relay link central→province: rtt %.1f ms, loss %.1f%%, jitter %.1f ms, %.0f kbit/s",
		relayStat.RTTMs, relayStat.LossPct, relayStat.JitterMs, relayStat.BitrateBps/1e3)
	if relayStat.RTTMs < 55 || relayStat.RTTMs > 200 {
		t.Errorf("relay link RTT %.1f ms, want about 60 ms (30 ms each way)", relayStat.RTTMs)
	}
}

func wanLogLevel() string {
	if os.Getenv("CAU_TEST_DEBUG") != "" {
		return "debug"
	}
	return "error"
}
