package monitor

import (
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/internal/testkit"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/rooms"
)

// fakeSource is a Source the test drives.
type fakeSource struct {
	mu      sync.Mutex
	links   []Link
	relays  map[string][]protocol.RelayStat
	bridges map[string]string
}

func (f *fakeSource) Links() []Link {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Link(nil), f.links...)
}

func (f *fakeSource) RelayStats() map[string][]protocol.RelayStat {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]protocol.RelayStat{}
	for k, v := range f.relays {
		out[k] = append([]protocol.RelayStat(nil), v...)
	}
	return out
}

func (f *fakeSource) Bridges() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for k, v := range f.bridges {
		out[k] = v
	}
	return out
}

func (f *fakeSource) set(links []Link, relays map[string][]protocol.RelayStat, bridges map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links, f.relays, f.bridges = links, relays, bridges
}

// testTree: central ─ p1 ─ d1 ─ {c1, c2}; central ─ p2.
func testTree(t testing.TB) *rooms.Tree {
	t.Helper()
	return testkit.Tree(t,
		rooms.Site{ID: "central", Name: "Trung ương", Level: rooms.LevelCentral},
		rooms.Site{ID: "p1", Name: "Tỉnh 1", Level: rooms.LevelProvince, Parent: "central"},
		rooms.Site{ID: "p2", Name: "Tỉnh 2", Level: rooms.LevelProvince, Parent: "central"},
		rooms.Site{ID: "d1", Name: "Huyện 1", Level: rooms.LevelDistrict, Parent: "p1"},
		rooms.Site{ID: "c1", Name: "Xã 1", Level: rooms.LevelCommune, Parent: "d1"},
		rooms.Site{ID: "c2", Name: "Xã 2", Level: rooms.LevelCommune, Parent: "d1"})
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// endpoint simulates one endpoint's link: cumulative uplink counters as a bridge keeps
// them, and downlink receiver-report figures.
type endpoint struct {
	meeting, id, name, site, bridge string
	received, expected              float64
	upPPS                           float64
	up, down                        protocol.LinkFigures
}

func newEndpoint(id, site, bridge string) *endpoint {
	return &endpoint{meeting: "m1", id: id, name: "Endpoint " + id, site: site, bridge: bridge, upPPS: 100,
		up:   protocol.LinkFigures{Streams: 2, RTTMs: 20, JitterMs: 3, BitrateBps: 1e6},
		down: protocol.LinkFigures{Streams: 2, RTTMs: 20, JitterMs: 3, BitrateBps: 1.5e6}}
}

// second advances the endpoint by one second with the given loss (percent) each way.
func (e *endpoint) second(lossPct float64) {
	e.expected += e.upPPS
	e.received += e.upPPS * (1 - lossPct/100)
	e.up.Packets = uint64(math.Round(e.received))
	e.up.LossPct = 100 * (e.expected - float64(e.up.Packets)) / e.expected
	e.down.Packets += 150
	e.down.LossPct = lossPct
	e.up.LastPacketAgeMs, e.down.LastPacketAgeMs = 20, 300
}

func (e *endpoint) link() Link {
	return Link{Meeting: e.meeting, Bridge: e.bridge, Measured: true, Up: e.up, Down: e.down,
		Participant: protocol.Participant{ID: e.id, Name: e.name, Site: e.site, Role: "room"}}
}

type harness struct {
	t   *testing.T
	src *fakeSource
	m   *Monitor
	now time.Time
}

func newHarness(t *testing.T, tree *rooms.Tree) *harness {
	src := &fakeSource{}
	return &harness{t: t, src: src, now: time.Unix(1_700_000_000, 0),
		m: New(Config{Source: src, Tree: tree, Logger: quietLogger()})}
}

// step publishes the endpoints' links and takes one sample a second later.
func (h *harness) step(eps []*endpoint, relays map[string][]protocol.RelayStat, bridges map[string]string) *Snapshot {
	var links []Link
	for _, e := range eps {
		links = append(links, e.link())
	}
	if bridges == nil {
		bridges = map[string]string{"local": "central"}
	}
	h.src.set(links, relays, bridges)
	h.now = h.now.Add(time.Second)
	h.m.sample(h.now)
	return h.m.Snapshot()
}

// run advances eps by seconds, each second with lossPct each way, stepping after each;
// it returns the last snapshot.
func (h *harness) run(seconds int, lossPct float64, eps ...*endpoint) *Snapshot {
	var s *Snapshot
	for range seconds {
		for _, e := range eps {
			e.second(lossPct)
		}
		s = h.step(eps, nil, nil)
	}
	return s
}

func TestSiteGradeFollowsWorstEndpoint(t *testing.T) {
	h := newHarness(t, testTree(t))
	a, b, c := newEndpoint("a", "c1", "local"), newEndpoint("b", "c1", "local"), newEndpoint("c", "c2", "local")
	stray := newEndpoint("x", "not-in-registry", "local")
	all := []*endpoint{a, b, c, stray}
	s := h.run(6, 0, all...)
	if g := s.Sites["c1"].Grade; g != GradeGood {
		t.Fatalf("c1 %v on clean links, want good (reasons %q)", g, s.Sites["c1"].Reasons)
	}
	if s.Sites[UnknownSite] == nil || s.Sites[UnknownSite].Endpoints != 1 || s.Sites["not-in-registry"] != nil {
		t.Fatalf("an endpoint of a site outside the registry must count under %q: %v", UnknownSite, keys(s.Sites))
	}
	if v := s.Sites["c1"]; v.Level != "commune" || v.Name != "Xã 1" || v.Endpoints != 2 {
		t.Fatalf("c1 view %+v", v)
	}

	// b's link loses 8% each way and its RTT goes to 400 ms: c1 is poor as soon as the
	// window's means cross the limits (no hold on the way down).
	b.up.RTTMs, b.down.RTTMs = 400, 400
	var poorAfter int
	for i := 1; i <= 10 && poorAfter == 0; i++ {
		for _, e := range all {
			e.second(map[*endpoint]float64{b: 8}[e])
		}
		if s = h.step(all, nil, nil); s.Sites["c1"].Grade == GradePoor {
			poorAfter = i
		}
	}
	if poorAfter == 0 || poorAfter > 5 {
		t.Fatalf("c1 poor after %d samples, want within the 5-s window (reasons %q)", poorAfter, s.Sites["c1"].Reasons)
	}
	for range 5 {
		for _, e := range all {
			e.second(map[*endpoint]float64{b: 8}[e])
		}
		s = h.step(all, nil, nil)
	}
	v := s.Sites["c1"]
	if v.Up.LossPct < 7.5 || v.Up.LossPct > 8.5 || v.Down.LossPct != 8 || v.RTTMs != 400 {
		t.Errorf("c1 figures up loss %.2f%%, down loss %.2f%%, RTT %.0f ms; want 8%%, 8%%, 400 ms",
			v.Up.LossPct, v.Down.LossPct, v.RTTMs)
	}
	if !strings.Contains(strings.Join(v.Reasons, ";"), "Endpoint b") {
		t.Errorf("c1 reasons %q do not name the endpoint", v.Reasons)
	}
	if g := s.Sites["c2"].Grade; g != GradeGood {
		t.Errorf("c2 %v, want good: its link is clean", g)
	}
	if len(s.Alerts) != 1 || s.Alerts[0].Subject != "c1" || !s.Alerts[0].Open() || s.Alerts[0].Grade != GradePoor {
		t.Fatalf("alerts %+v, want one open poor alert for c1", s.Alerts)
	}
	k := s.Counters["c1"]
	if k.LostUp <= 0 || k.LostDown <= 0 || k.PacketsUp < 2*100*10 {
		t.Errorf("c1 counters %+v", k)
	}

	// Clean again: the 5-s window empties, then good must hold 10 s.
	var goodAfter int
	for i := 1; i <= 30 && goodAfter == 0; i++ {
		for _, e := range all {
			e.second(0)
		}
		b.up.RTTMs, b.down.RTTMs = 20, 20
		if s = h.step(all, nil, nil); s.Sites["c1"].Grade == GradeGood {
			goodAfter = i
		}
	}
	if goodAfter < 10 || goodAfter > 17 {
		t.Fatalf("c1 good %d s after the link cleared, want between the hold (10 s) and window + hold (16 s)", goodAfter)
	}
	if a := s.Alerts[0]; a.Open() || a.EndReason != "recovered" || a.End.Sub(a.Start) < 10*time.Second {
		t.Fatalf("alert after recovery: %+v", a)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The uplink's cumulative loss is turned back into the loss of each window.
func TestUplinkLossIsWindowed(t *testing.T) {
	h := newHarness(t, testTree(t))
	e := newEndpoint("a", "c1", "local")
	h.run(20, 10, e)
	s := h.run(6, 0, e)
	if cum := e.up.LossPct; cum < 7 {
		t.Fatalf("cumulative loss %.1f%%: the test needs it high", cum)
	}
	if got := s.Sites["c1"].Up.LossPct; got != 0 {
		t.Fatalf("window loss %.2f%% after 6 clean seconds, want 0 (the cumulative figure is %.1f%%)", got, e.up.LossPct)
	}
	// A new set of streams restarts the counters: no negative or huge loss.
	e.received, e.expected = 0, 0
	s = h.run(3, 2, e)
	if got := s.Sites["c1"].Up.LossPct; got < 1.5 || got > 2.5 {
		t.Fatalf("loss after a counter restart %.2f%%, want 2%%", got)
	}
}

func TestLostAfterSilence(t *testing.T) {
	h := newHarness(t, testTree(t))
	e := newEndpoint("a", "c2", "local")
	h.run(3, 0, e)
	var s *Snapshot
	var lostAt int
	for i := 1; i <= 8 && lostAt == 0; i++ {
		e.up.LastPacketAgeMs += 1000 // nothing arrives any more
		e.down.LastPacketAgeMs += 1000
		if s = h.step([]*endpoint{e}, nil, nil); s.Sites["c2"].Grade == GradeLost {
			lostAt = i
		}
	}
	if lostAt != 5 {
		t.Fatalf("lost after %d silent seconds, want 5 (grade %v)", lostAt, s.Sites["c2"].Grade)
	}
	if len(s.Alerts) != 1 || s.Alerts[0].Grade != GradeLost {
		t.Fatalf("alerts %+v", s.Alerts)
	}
	// The endpoint leaves: the site has no endpoint, the alert ends.
	s = h.step(nil, nil, nil)
	if s.Sites["c2"] != nil || s.Alerts[0].Open() || s.Alerts[0].EndReason != "no endpoint left" {
		t.Fatalf("after leaving: site %+v, alert %+v", s.Sites["c2"], s.Alerts[0])
	}
	if len(h.m.endpoints) != 0 {
		t.Fatalf("%d endpoints kept after they left", len(h.m.endpoints))
	}
}

// A subscriber whose receiver reports never come is lost too, from the time its streams
// appeared.
func TestLostWithoutAnyReport(t *testing.T) {
	h := newHarness(t, testTree(t))
	e := newEndpoint("a", "c1", "local")
	e.up = protocol.LinkFigures{LastPacketAgeMs: -1}
	e.down = protocol.LinkFigures{Streams: 2, LastPacketAgeMs: -1}
	var g Grade
	for i := 1; i <= 6; i++ {
		if g = h.step([]*endpoint{e}, nil, nil).Sites["c1"].Grade; i < 6 && g == GradeLost {
			t.Fatalf("lost after %d s", i)
		}
	}
	if g != GradeLost {
		t.Fatalf("grade %v after 6 s without a receiver report, want lost", g)
	}
}

func TestUnmeasuredEndpointIsUnknown(t *testing.T) {
	h := newHarness(t, testTree(t))
	e := newEndpoint("a", "c1", "local")
	l := e.link()
	l.Measured = false
	h.src.set([]Link{l}, nil, map[string]string{"local": "central"})
	h.m.sample(h.now)
	v := h.m.Snapshot().Sites["c1"]
	if v == nil || v.Endpoints != 1 || v.Grade != GradeUnknown {
		t.Fatalf("unmeasured endpoint: %+v, want counted with grade unknown", v)
	}
}

func TestHistoryIsBounded(t *testing.T) {
	h := newHarness(t, testTree(t))
	e := newEndpoint("a", "c1", "local")
	h.run(700, 1, e) // more than 10 minutes
	d, ok := h.m.Detail("c1")
	if !ok || len(d.Endpoints) != 1 {
		t.Fatalf("detail %+v", d)
	}
	hist := d.Endpoints[0].History
	if len(hist.Grades) != 120 || len(hist.Series["rtt_ms"]) != 120 || hist.StepSeconds != 5 {
		t.Fatalf("history of %d points (step %v s), want 120 at 5 s", len(hist.Grades), hist.StepSeconds)
	}
	if got := hist.Series["loss_down_pct"][119]; got != 1 {
		t.Errorf("newest down loss %v, want 1", got)
	}
	if _, ok := h.m.Detail("no-such-site"); ok {
		t.Error("detail of a site outside the registry")
	}
}

func TestAlertsAreBounded(t *testing.T) {
	src := &fakeSource{}
	m := New(Config{Source: src, Tree: testTree(t), MaxAlerts: 5, Hold: -1, Window: 1, Logger: quietLogger()})
	now := time.Unix(1_700_000_000, 0)
	e := newEndpoint("a", "c1", "local")
	for i := range 40 {
		loss := 0.0
		if i%4 < 2 {
			loss = 20
		}
		e.second(loss)
		e.up.LossPct = loss // per window: make each second's loss the window's
		e.received, e.expected = 0, 0
		src.set([]Link{e.link()}, nil, map[string]string{"local": "central"})
		now = now.Add(time.Second)
		m.sample(now)
	}
	if n := len(m.Snapshot().Alerts); n != 5 {
		t.Fatalf("%d alerts kept, want MaxAlerts (5)", n)
	}
}

// relaySim keeps both ends' counters of one meeting's relay links.
type relaySim struct {
	sent map[[2]string]uint64 // [from, to] → packets sent
	recv map[[2]string]uint64 // [at, from] → packets received
}

func newRelaySim() *relaySim {
	return &relaySim{sent: map[[2]string]uint64{}, recv: map[[2]string]uint64{}}
}

// second moves 100 packets each way over every link, and returns the stats with the
// given loss (percent) on the directions named in loss; frozen directions stop arriving.
func (r *relaySim) second(links [][2]string, loss map[[2]string]float64, frozen map[[2]string]bool) map[string][]protocol.RelayStat {
	out := map[string][]protocol.RelayStat{}
	for _, l := range links {
		for _, d := range [][2]string{{l[0], l[1]}, {l[1], l[0]}} {
			r.sent[d] += 100
			if !frozen[d] {
				r.recv[[2]string{d[1], d[0]}] += 100
			}
		}
	}
	for _, l := range links {
		for _, d := range [][2]string{{l[0], l[1]}, {l[1], l[0]}} {
			out[d[0]] = append(out[d[0]], protocol.RelayStat{Peer: ids.ForRelay("m1", ids.BridgeID(d[1])), PacketsSent: r.sent[d],
				PacketsRecv: r.recv[d], StreamsSent: 2, StreamsRecv: 2, RTTMs: 40, JitterMs: 2,
				LossPct: loss[d], BitrateBps: 8e5})
		}
	}
	return out
}

func TestRelayLinks(t *testing.T) {
	h := newHarness(t, testTree(t))
	bridges := map[string]string{"local": "central", "br-p1": "p1", "br-d1": "d1", "br-p2": "p2"}
	links := [][2]string{{"local", "br-p1"}, {"br-p1", "br-d1"}}
	sim := newRelaySim()
	e := newEndpoint("a", "c1", "br-d1")
	var s *Snapshot
	for range 6 {
		e.second(0)
		s = h.step([]*endpoint{e}, sim.second(links, nil, nil), bridges)
	}
	if len(s.Relays) != 4 {
		t.Fatalf("%d relay views, want 4 (two links, both ways): %+v", len(s.Relays), s.Relays)
	}
	for _, r := range s.Relays {
		wantDir := map[string]string{"br-p1>local": "up", "local>br-p1": "down", "br-d1>br-p1": "up", "br-p1>br-d1": "down"}[r.Bridge+">"+r.Peer]
		if r.Direction != wantDir || r.Grade != GradeGood || r.Site != bridges[r.Bridge] || r.PeerSite != bridges[r.Peer] {
			t.Errorf("relay %+v: want direction %s, good, sites from the registry", r, wantDir)
		}
	}
	var p2 BridgeView
	for _, b := range s.Bridges {
		if b.ID == "br-p2" {
			p2 = b
		}
	}
	if p2.Parent != "local" || p2.RelayLinks != 0 {
		t.Errorf("br-p2: %+v, want parent local and no relay link", p2)
	}

	// Central → province loses 8%: the province's site goes poor through its uplink,
	// the commune's own link stays good but its path is poor.
	for range 6 {
		e.second(0)
		s = h.step([]*endpoint{e}, sim.second(links, map[[2]string]float64{{"local", "br-p1"}: 8}, nil), bridges)
	}
	if v := s.Sites["p1"]; v == nil || v.Grade != GradePoor || v.UplinkGrade != GradePoor || v.Endpoints != 0 {
		t.Fatalf("p1 %+v, want poor through its uplink", v)
	}
	if v := s.Sites["c1"]; v.Grade != GradeGood || v.PathGrade != GradePoor {
		t.Fatalf("c1 grade %v path %v, want good with a poor path", v.Grade, v.PathGrade)
	}
	d, _ := h.m.Detail("c1")
	var hops []string
	for _, hop := range d.RelayPath {
		hops = append(hops, hop.From+">"+hop.To)
		if hop.Up == nil || hop.Down == nil {
			t.Errorf("hop %s→%s lacks a direction's figures", hop.From, hop.To)
		}
	}
	if strings.Join(hops, " ") != "br-d1>br-p1 br-p1>local" {
		t.Fatalf("relay path %v", hops)
	}
	if d.RelayPath[1].Down.Grade != GradePoor || d.RelayPath[1].Down.LossPct != 8 {
		t.Errorf("central→province hop %+v, want poor with 8%% loss", d.RelayPath[1].Down)
	}

	// Province → district stops arriving while the district keeps being sent to: lost
	// after 5 s.
	var lostAt int
	for i := 1; i <= 8 && lostAt == 0; i++ {
		e.second(0)
		s = h.step([]*endpoint{e}, sim.second(links, nil, map[[2]string]bool{{"br-p1", "br-d1"}: true}), bridges)
		if s.Sites["d1"] != nil && s.Sites["d1"].Grade == GradeLost {
			lostAt = i
		}
	}
	if lostAt < 5 || lostAt > 6 {
		t.Fatalf("district uplink lost after %d s of silence, want 5", lostAt)
	}
}

func TestBridgeDownAndBack(t *testing.T) {
	h := newHarness(t, testTree(t))
	all := map[string]string{"local": "central", "br-p1": "p1"}
	h.step(nil, nil, all)
	s := h.step(nil, nil, map[string]string{"local": "central"})
	var down *BridgeView
	for i := range s.Bridges {
		if s.Bridges[i].ID == "br-p1" {
			down = &s.Bridges[i]
		}
	}
	if down == nil || down.Up {
		t.Fatalf("bridges %+v, want br-p1 listed as down", s.Bridges)
	}
	if len(s.Alerts) != 1 || s.Alerts[0].Kind != "bridge" || !s.Alerts[0].Open() {
		t.Fatalf("alerts %+v", s.Alerts)
	}
	s = h.step(nil, nil, all)
	if s.Alerts[0].Open() || s.Alerts[0].EndReason != "bridge back" {
		t.Fatalf("alert after the bridge came back: %+v", s.Alerts[0])
	}
	// A bridge that stays down is forgotten after ForgetBridges.
	h.step(nil, nil, map[string]string{"local": "central"})
	h.now = h.now.Add(2 * time.Hour)
	if s = h.step(nil, nil, map[string]string{"local": "central"}); len(s.Bridges) != 1 {
		t.Fatalf("bridges %+v, want br-p1 forgotten", s.Bridges)
	}
}

// A publisher's lossy uplink reaches its subscribers as downlink loss: the publisher's
// site is poor, theirs are not. A subscriber losing more than any upstream explains is
// poor, once the loss has lasted downConfirm samples.
func TestUpstreamLossIsAttributed(t *testing.T) {
	h := newHarness(t, testTree(t))
	pub := newEndpoint("pub", "c1", "local")
	s1, s2 := newEndpoint("s1", "c2", "local"), newEndpoint("s2", "p2", "local")
	for _, s := range []*endpoint{s1, s2} {
		s.up = protocol.LinkFigures{LastPacketAgeMs: -1} // listen only
	}
	all := []*endpoint{pub, s1, s2}
	var snap *Snapshot
	for range 12 {
		pub.second(8)
		pub.down.LossPct = 0
		for _, s := range []*endpoint{s1, s2} {
			s.second(8) // the publisher's loss, forwarded
		}
		snap = h.step(all, nil, nil)
	}
	if g := snap.Sites["c1"].Grade; g != GradePoor {
		t.Fatalf("publisher's site %v, want poor", g)
	}
	for _, id := range []string{"c2", "p2"} {
		if g := snap.Sites[id].Grade; g != GradeGood {
			t.Errorf("subscriber site %s %v (reasons %q), want good: the loss is the publisher's", id, g, snap.Sites[id].Reasons)
		}
	}
	d, _ := h.m.Detail("c2")
	if up := d.Endpoints[0].Upstream; !strings.Contains(up, "Endpoint pub") {
		t.Errorf("the subscriber's detail attributes its loss to %q", up)
	}

	// The publisher recovers; s1's own link now loses 12%: poor after downConfirm samples.
	var poorAt int
	for i := 1; i <= 30 && poorAt == 0; i++ {
		pub.second(0)
		s1.second(12)
		s2.second(0)
		if snap = h.step(all, nil, nil); snap.Sites["c2"].Grade == GradePoor {
			poorAt = i
		}
	}
	if poorAt == 0 {
		t.Fatalf("c2 never poor with 12%% loss of its own (reasons %q)", snap.Sites["c2"].Reasons)
	}
	t.Logf("own downlink loss graded poor after %d samples (the publisher's window clears first)", poorAt)
}
