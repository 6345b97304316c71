package signaling_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/bridge"
	"github.com/cau-project/cau/bridge/control"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/sfu"
	"github.com/cau-project/cau/sfu/speaker"
	"github.com/cau-project/cau/signaling"
)

// The test tree: a four-level chain with bridges at central (in signaling's process),
// province, district and commune, plus leaves without bridges at each level.
//
//	central*  ── prov*  ── dist*  ── comm*
//	   │           │          └───── comm2
//	   │           └──────── dist2
//	   └─ prov2 ── comm3
var testParents = map[string]string{
	"prov": "central", "prov2": "central",
	"dist": "prov", "dist2": "prov",
	"comm": "dist", "comm2": "dist",
	"comm3": "prov2",
}

func testAncestry(site string) []string {
	if strings.HasPrefix(site, "pc-") { // the province's communes in the benchmarks
		return []string{"prov", "central"}
	}
	if strings.HasPrefix(site, "nat-") { // the national meeting's tree (national_test.go)
		return natAncestry(site)
	}
	var out []string
	for p, ok := testParents[site]; ok; p, ok = testParents[p] {
		out = append(out, p)
	}
	return out
}

type cascade struct {
	*testServer
	url     string
	cancels map[string]context.CancelFunc
	speaker speaker.Params // every bridge's Last-N tuning
}

// startCascade runs signaling with its bridge at central and one in-process bridge per
// site given, each registered over the real control socket.
func startCascade(t testing.TB, sites ...string) *cascade {
	t.Helper()
	return startCascadeWith(t, speaker.Params{}, sites...)
}

// startSteadyCascade is startCascade for tests that check the relay tree itself (which
// links exist, what each carries): signaling declares a bridge down only after
// control.HardTimeout of silence, not DefaultTimeout's 500 ms. Under -race on a loaded
// 2-core box an in-process bridge's beats went unscheduled for 542 and 751 ms (its
// watchdog on time): the bridge was declared down, registered again a second later, and
// the endpoints joining meanwhile were placed around it (the district bridge skipped:
// a province→commune link, "no relay from br-prov to br-dist"). Failover has tests of
// its own (failover_test.go), at the default.
func startSteadyCascade(t testing.TB, sites ...string) *cascade {
	t.Helper()
	return startCascadeConfig(t, speaker.Params{}, func(c *signaling.Config) { c.BridgeTimeout = control.HardTimeout }, sites...)
}

// startCascadeWith is startCascade with the bridges' Last-N tuned by sp.
func startCascadeWith(t testing.TB, sp speaker.Params, sites ...string) *cascade {
	t.Helper()
	return startCascadeConfig(t, sp, nil, sites...)
}

// startCascadeConfig is startCascadeWith with signaling's configuration changed by mutate
// (if not nil).
func startCascadeConfig(t testing.TB, sp speaker.Params, mutate func(*signaling.Config), sites ...string) *cascade {
	t.Helper()
	var hs *httptest.Server
	ts := startServerWith(t, func(c *signaling.Config) {
		c.Site = "central"
		c.Ancestry = testAncestry
		if mutate != nil {
			mutate(c)
		}
		if sp != (speaker.Params{}) {
			b, err := sfu.New(sfu.Config{ICEUDPPort: 0, ICETCPPort: -1, IncludeLoopback: true, Logger: logger(), Speaker: sp})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			c.Bridge = b
		}
	}, func(sig *signaling.Server) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("/ws", sig)
		mux.HandleFunc("/bridge", sig.ServeBridge)
		return mux
	}, &hs)
	c := &cascade{testServer: ts, url: "ws" + strings.TrimPrefix(hs.URL, "http"), cancels: map[string]context.CancelFunc{},
		speaker: sp}
	ts.ws = c.url + "/ws"
	for _, site := range sites {
		c.addBridge(t, "br-"+site, site)
	}
	eventually(t, 5*time.Second, func() string {
		if got := len(ts.sig.Bridges()); got != len(sites)+1 {
			return fmt.Sprintf("%d bridges registered, want %d", got, len(sites)+1)
		}
		return ""
	})
	return c
}

func (c *cascade) addBridge(t testing.TB, id, site string) { c.addBridgeWith(t, id, site, nil) }

// addBridgeWith is addBridge with the bridge's configuration changed by mutate (if not nil).
func (c *cascade) addBridgeWith(t testing.TB, id, site string, mutate func(*bridge.ClientConfig)) {
	t.Helper()
	b, err := sfu.New(sfu.Config{ICEUDPPort: 0, ICETCPPort: -1, IncludeLoopback: true, Logger: logger(), Speaker: c.speaker})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.keys.Sign(control.BridgeClaims(ids.SiteID(site), ids.BridgeID(id)), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	cfg := bridge.ClientConfig{SignalURL: c.url + "/bridge", Token: tok, ID: ids.BridgeID(id), Site: ids.SiteID(site), Bridge: b, Logger: logger()}
	if mutate != nil {
		mutate(&cfg)
	}
	c.cancels[id] = runBridge(t, cfg)
}

// runBridge keeps cfg's bridge registered until the test ends (or the returned cancel).
func runBridge(t testing.TB, cfg bridge.ClientConfig) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = bridge.Run(ctx, cfg)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return cancel
}

// relayStat finds the counters of the relay peer on bridge `on` that faces bridge `toward`.
func (c *cascade) relayStat(on, toward string) (protocol.RelayStat, bool) {
	for _, st := range c.sig.RelayStats()[on] {
		if st.Peer.Relay.Bridge == ids.BridgeID(toward) {
			return st, true
		}
	}
	return protocol.RelayStat{}, false
}

func TestCascadeDownstreamOncePerLink(t *testing.T) {
	c := startSteadyCascade(t, "prov", "dist", "comm")
	ctx := context.Background()
	chair := c.join(t, "m1", "central", "chair")
	synth, err := chair.PublishWith(ctx, client.PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	subs := []*client.Client{
		c.join(t, "m1", "comm", "commune A"),
		c.join(t, "m1", "comm", "commune A'"),  // a second subscriber below the same links
		c.join(t, "m1", "comm2", "commune B"),  // a leaf served by the district bridge
		c.join(t, "m1", "dist2", "district 2"), // a leaf served by the province bridge
	}
	eventually(t, 20*time.Second, func() string {
		for _, s := range subs {
			if why := receivesFrom(s, chair, 50); why != "" {
				return why
			}
		}
		return ""
	})
	// Every relay link on the chair's path carries each of its two streams exactly once.
	links := [][2]string{{"local", "br-prov"}, {"br-prov", "br-dist"}, {"br-dist", "br-comm"}}
	eventually(t, 5*time.Second, func() string {
		for _, l := range links {
			st, ok := c.relayStat(l[0], l[1])
			if !ok {
				return fmt.Sprintf("no relay from %s to %s", l[0], l[1])
			}
			if st.StreamsSent != 2 {
				return fmt.Sprintf("relay %s→%s forwards %d streams, want 2 (audio, video)", l[0], l[1], st.StreamsSent)
			}
		}
		return ""
	})
	// Packets: what crossed the last link is what crossed the first, not once per
	// subscriber: two subscribers at the commune did not double it.
	top, _ := c.relayStat("local", "br-prov")
	bottom, _ := c.relayStat("br-dist", "br-comm")
	if bottom.PacketsSent > top.PacketsSent+200 || top.PacketsSent == 0 {
		t.Fatalf("packets on the top link %d, on the commune link %d: the commune link carries more than one copy",
			top.PacketsSent, bottom.PacketsSent)
	}
	got := subs[0].Stream(chair.Self.Streams[protocol.SourceCamera], "video")
	if got.FirstKeyframe.Load() != 1 {
		t.Error("the commune's first video packet, three hops down, is not a keyframe")
	}
	// The synthetic chair sends a keyframe only at its start and when asked: the
	// subscribers far down got theirs because their bridges' requests climbed the relays.
	if synth.KeyframesSent() < 2 {
		t.Errorf("the chair sent %d keyframes: no keyframe request reached it across the relays", synth.KeyframesSent())
	}
	// Nothing flows up: nobody above the commune subscribes to anything from below.
	if st, ok := c.relayStat("br-comm", "br-dist"); ok && st.StreamsSent != 0 {
		t.Errorf("the commune bridge sends %d streams up with no publisher below it", st.StreamsSent)
	}
	t.Logf("packets on relay links: central→prov %d, dist→comm %d", top.PacketsSent, bottom.PacketsSent)
}

func TestCascadeUpstreamFromCommune(t *testing.T) {
	c := startSteadyCascade(t, "prov", "dist", "comm")
	commune := c.publisher(t, "m1", "comm", "commune speaker")
	central := c.join(t, "m1", "central", "chair")
	other := c.join(t, "m1", "comm3", "another province's commune")
	eventually(t, 20*time.Second, func() string {
		return receivesFrom(central, commune, 50) + receivesFrom(other, commune, 50)
	})
	// The path is commune → district → province → central; comm3 has no bridge of its
	// own nor a province bridge, so it is served by central: no other link is used.
	for _, l := range [][2]string{{"br-comm", "br-dist"}, {"br-dist", "br-prov"}, {"br-prov", "local"}} {
		st, ok := c.relayStat(l[0], l[1])
		if !ok || st.StreamsSent != 2 {
			t.Errorf("relay %s→%s: %+v, want 2 streams up", l[0], l[1], st)
		}
	}
}

func TestCascadePrunesUnwatchedLinks(t *testing.T) {
	c := startSteadyCascade(t, "prov", "dist", "comm")
	chair := c.publisher(t, "m1", "central", "chair")
	dist := c.join(t, "m1", "dist", "district")
	comm := c.join(t, "m1", "comm", "commune")
	eventually(t, 20*time.Second, func() string { return receivesFrom(dist, chair, 30) + receivesFrom(comm, chair, 30) })
	eventually(t, 5*time.Second, func() string {
		if st, ok := c.relayStat("br-dist", "br-comm"); !ok || st.StreamsSent != 2 {
			return fmt.Sprintf("district→commune link: %+v", st)
		}
		return ""
	})
	// The commune's only subscriber leaves: the chair's streams stop crossing that link
	// within 2 s; the district keeps receiving.
	comm.Leave()
	eventually(t, 2*time.Second, func() string {
		if st, ok := c.relayStat("br-dist", "br-comm"); ok && st.StreamsSent != 0 {
			return fmt.Sprintf("district→commune link still forwards %d streams", st.StreamsSent)
		}
		return ""
	})
	keepsReceiving(t, dist, chair, "audio", 25, 3*time.Second)
}

// TestLinksReportEndpoints checks the per-endpoint link figures monitoring reads, for an
// endpoint on the local bridge and one on a remote bridge (reported by heartbeat).
func TestLinksReportEndpoints(t *testing.T) {
	c := startCascade(t, "prov")
	chair := c.join(t, "m1", "central", "chair")
	if err := chair.Publish(context.Background()); err != nil {
		t.Fatal(err)
	}
	prov := c.join(t, "m1", "prov", "province")
	eventually(t, 15*time.Second, func() string { return receivesFrom(prov, chair, 50) })
	eventually(t, 10*time.Second, func() string {
		links := map[string]signaling.EndpointLink{}
		for _, l := range c.sig.Links() {
			links[l.Participant.ID] = l
		}
		ch, pv := links[chair.Self.ID], links[prov.Self.ID]
		switch {
		case ch.Bridge != "local" || pv.Bridge != "br-prov":
			return fmt.Sprintf("bridges %q and %q, want local and br-prov", ch.Bridge, pv.Bridge)
		case !ch.Measured || ch.Up.Streams != 2 || ch.Up.Packets < 50 || ch.Up.BitrateBps <= 0:
			return fmt.Sprintf("chair's uplink not measured yet: %+v", ch.Up)
		case ch.Up.LossPct > 1 || ch.Up.LastPacketAgeMs < 0 || ch.Up.LastPacketAgeMs > 1000:
			return fmt.Sprintf("chair's uplink figures wrong on loopback: %+v", ch.Up)
		case !pv.Measured || pv.Down.Streams != 2 || pv.Down.Packets < 50:
			return fmt.Sprintf("province downlink not reported by its bridge yet: %+v", pv.Down)
		case pv.Down.RTTMs <= 0 || pv.Down.LossPct > 1:
			return fmt.Sprintf("province downlink quality not from receiver reports yet: %+v", pv.Down)
		}
		return ""
	})
}

// TestSilentBridgeMarkedDown registers a bridge that then stops sending heartbeats (a
// hung process, a cut link): it is marked down after the timeout even though its socket
// stays open.
func TestSilentBridgeMarkedDown(t *testing.T) {
	c := startCascade(t)
	tok, err := c.keys.Sign(control.BridgeClaims("prov", ""), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	conn, resp, err := websocket.DefaultDialer.Dial(c.url+"/bridge", http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	defer conn.Close()
	reg, _ := protocol.Encode(protocol.KindBridgeRegister, "1", protocol.BridgeRegister{ID: "br-silent", Site: "prov"})
	if err := conn.WriteMessage(websocket.TextMessage, reg); err != nil {
		t.Fatal(err)
	}
	if _, _, err := conn.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.sig.Bridges()["br-silent"]; !ok {
		t.Fatal("the bridge is not registered")
	}
	start := time.Now()
	eventually(t, 6*time.Second, func() string {
		if _, ok := c.sig.Bridges()["br-silent"]; ok {
			return "a bridge silent for longer than the heartbeat timeout is still up"
		}
		return ""
	})
	if d := time.Since(start); d < 2*time.Second {
		t.Fatalf("marked down after %v, before the 3 s timeout", d)
	}

	// A token of another role may not register a bridge.
	other, _ := c.keys.Sign(auth.Claims{Role: auth.RoleAdmin}, time.Hour)
	_, resp, err = websocket.DefaultDialer.Dial(c.url+"/bridge", http.Header{"Authorization": {"Bearer " + other}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an admin token opened the bridge socket: %v", err)
	}
	_ = resp.Body.Close()
}

// talker joins meeting at site and publishes light media (5 fps, one 200-byte packet a
// frame) with audio levels, silent until its Synth's SetLoudness: a site whose streams the
// Last-N tests follow (what crosses, not how much).
func (c *cascade) talker(t testing.TB, meeting, site, name string) (*client.Client, *client.Synth) {
	t.Helper()
	e := c.join(t, meeting, site, name)
	s, err := e.PublishWith(context.Background(), client.PublishOptions{FPS: 5, PacketsPerFrame: 1, PayloadBytes: 200, Levels: true})
	if err != nil {
		t.Fatal(err)
	}
	return e, s
}
