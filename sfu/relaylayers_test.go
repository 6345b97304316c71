package sfu

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cau-project/cau/sfu/bwe"
)

// TestLayerTrackIDs: a layer track's id names its source and layer, and nothing else
// reads as one.
func TestLayerTrackIDs(t *testing.T) {
	for l := range maxLayers {
		id := layerTrackID("p1a2b3.camera", l)
		base, got, ok := parseLayerTrackID(id)
		if !ok || base != "p1a2b3.camera" || int(got) != l {
			t.Errorf("%q read as %q, layer %d, %v", id, base, got, ok)
		}
	}
	for _, id := range []string{"p1a2b3.camera", "~L0", "x~L3", "x~L", "x~L01", "x~l1", ""} {
		if _, _, ok := parseLayerTrackID(id); ok {
			t.Errorf("%q read as a layer track", id)
		}
	}
}

// TestRelayLayersDropTheHighestFirst: a relay link's subscription weighs the layers its
// subtree needs as one cumulative stream, so the allocator's choice of a top layer is the
// set carried: a link that carries both needed layers carries both and not the one between;
// a link short of that keeps the low layer (the weak sites' picture) and drops the top, for
// the middle one if it fits beside it; a top alone that does not fit gives way to a lower
// layer.
func TestRelayLayersDropTheHighestFirst(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	measured := []float64{130e3, 500e3, 1.4e6}
	cases := []struct {
		name   string
		need   int8  // highest (CAUN), needUnknown: never said
		mask   uint8 // the set (0: the far end names only the highest)
		budget float64
		want   []int
	}{
		{"low and top needed, room for both", 2, 0b101, 2e6, []int{0, 2}},
		{"low and top needed, room for the low one and the middle", 2, 0b101, 1e6, []int{0, 1}},
		{"low and top needed, room for the low one", 2, 0b101, 400e3, []int{0}},
		{"low and top needed, room for nothing more than the low one", 2, 0b101, 50e3, []int{0}},
		{"all three needed, room for two", 2, 0b111, 1e6, []int{0, 1}},
		{"the middle alone", 1, 0b010, 2e6, []int{1}},
		{"the top alone, room for the middle", 2, 0b100, 1e6, []int{1}},
		{"a far end that names only its highest", 2, 0, 2e6, []int{2}},
		{"a far end that never said: the layer the link fits", needUnknown, 0, 1e6, []int{1}},
	}
	for _, c := range cases {
		d := &DownTrack{sub: &Peer{params: PeerParams{Relay: true}}, sim: newDownLayers(&simulcast{}, 90000)}
		d.maxLayer.Store(maxLayers - 1)
		r := &relayLayers{ceil: maxLayers - 1}
		for i := range r.tracks {
			r.tracks[i] = &DownTrack{sim: newDownLayers(&simulcast{}, 90000)}
			r.tracks[i].sim.fixed = int8(i)
		}
		d.relay = r
		if c.need != needUnknown {
			d.need.Store(int32(c.need))
			d.needMask.Store(int32(c.mask))
			d.needAt.Store(now.UnixNano())
		}
		rates := slices.Clone(measured)
		a := &allocator{}
		if !a.capStream(d, rates, now) {
			t.Fatalf("%s: stopped", c.name)
		}
		r.weigh(d, rates, now)
		top := bwe.Allocate(c.budget, []bwe.Stream{{Rates: rates}}, nil)[0]
		r.apply(top)
		if got := d.RelayLayers(); !slices.Equal(got, c.want) {
			t.Errorf("%s: the link carries %v (rates %v, top %d), want %v", c.name, got, rates, top, c.want)
		}
	}
}

// gaugeValue reads one gauge of a vector.
func gaugeValue(t *testing.T, v *prometheus.GaugeVec, labels ...string) float64 {
	t.Helper()
	return readMetric(t, v.WithLabelValues(labels...)).GetGauge().GetValue()
}

// longestStall samples w for span and returns the longest time in it without a new packet.
func longestStall(w *layerWatch, span time.Duration) time.Duration {
	const step = 50 * time.Millisecond
	var longest time.Duration
	last, lastAt := w.snapshot().packets, time.Now()
	for end := time.Now().Add(span); time.Now().Before(end); {
		time.Sleep(step)
		if n := w.snapshot().packets; n != last {
			last, lastAt = n, time.Now()
		}
		longest = max(longest, time.Since(lastAt))
	}
	return longest
}

// layerTrackBytes is what each layer track of a relay subscription sends over span.
func layerTrackBytes(d *DownTrack, span time.Duration) [maxLayers]uint64 {
	var before, out [maxLayers]uint64
	for i, tr := range d.relay.tracks {
		before[i] = tr.bytesSent.Load()
	}
	time.Sleep(span)
	for i, tr := range d.relay.tracks {
		out[i] = tr.bytesSent.Load() - before[i]
	}
	return out
}

// awaitCarried waits for the relay link to carry exactly layers.
func awaitCarried(t *testing.T, link *DownTrack, layers []int, d time.Duration, what string) {
	t.Helper()
	asked := time.Now()
	eventually(t, d, func() string {
		if got := link.RelayLayers(); !slices.Equal(got, layers) {
			return fmt.Sprintf("%s: the link carries layers %v, want %v", what, got, layers)
		}
		return ""
	})
	t.Logf("%s: the link carries %v after %v", what, layers, time.Since(asked).Round(10*time.Millisecond))
}

// TestRelayLinkCarriesMixedNeeds is issue 10's "several layers per relay link for
// subtrees with mixed needs": bridge A holds a three-layer publisher and a relay link to
// bridge B, where a commune shows the camera as a thumbnail (low layer) and a district
// hall as a large tile (top layer). Each receives its own layer, the link carries exactly
// those two (each once; the middle one not at all), and when the needs change the link
// follows: the hall shrinks its tile (the link carries the low layer alone, the hall
// switches down at a keyframe), the commune enlarges its (the top comes back for it).
// Every change a subscriber sees starts at a keyframe with one SSRC and numbering that
// never runs back, and neither freezes while the other's need changes.
func TestRelayLinkCarriesMixedNeeds(t *testing.T) {
	l := newNeededLink(t, false)
	link := l.link
	_, cd, wc := l.thumbnail(t)
	wh := newLayerWatch()
	hall := newTestEndpointWith(t, l.b, "hall", nil, endpointOpts{onVideo: wh.read})
	if _, err := hall.peer.Subscribe(l.far, l.far.ID(), l.far.StreamID()); err != nil {
		t.Fatal(err)
	}
	awaitLayer(t, wc, 0, 320, link, 30*time.Second, "a thumbnail beside a large tile")
	awaitLayer(t, wh, 2, 1280, link, 60*time.Second, "a large tile beside a thumbnail")
	awaitCarried(t, link, []int{0, 2}, 15*time.Second, "a thumbnail and a large tile beyond")

	stall := longestStall(wc, 3*time.Second)
	sc, sh := wc.snapshot(), wh.snapshot()
	if sc.layer != 0 || sh.layer != 2 {
		t.Errorf("the commune sees layer %d (want 0), the hall %d (want 2)", sc.layer, sh.layer)
	}
	if stall > 1500*time.Millisecond {
		t.Errorf("the commune's thumbnail stalled %v while the hall watched the top layer", stall)
	}
	by := layerTrackBytes(link, 2*time.Second)
	t.Logf("the link's layer tracks sent %v bytes in 2 s", by)
	if by[0] == 0 || by[2] == 0 || by[1] > 2000 {
		t.Errorf("the link's layer tracks sent %v bytes in 2 s: want the low and the top, not the middle", by)
	}
	if g0, g2 := gaugeValue(t, l.metrics.RelayLayers, "0"), gaugeValue(t, l.metrics.RelayLayers, "2"); g0 != 1 || g2 != 1 {
		t.Errorf("cau_bridge_relay_layers: layer 0 %v, layer 2 %v, want 1 and 1", g0, g2)
	}

	// The hall shrinks its tile: the low layer alone crosses, the hall moves down to it.
	hd := subscriptionOf(hall.peer)
	hd.SetMaxLayer(0)
	awaitLayer(t, wh, 0, 320, link, 20*time.Second, "the hall's tile shrunk")
	awaitCarried(t, link, []int{0}, 15*time.Second, "two thumbnails beyond")
	if s := wc.snapshot(); s.layer != 0 {
		t.Errorf("the commune left the low layer (%d) while the hall shrank its tile", s.layer)
	}

	// The commune enlarges its tile: the top comes back over the link for it alone.
	cd.SetMaxLayer(2)
	stalled := make(chan time.Duration, 1)
	go func() { stalled <- longestStall(wh, 5*time.Second) }()
	awaitLayer(t, wc, 2, 1280, link, 30*time.Second, "the commune's tile enlarged")
	awaitCarried(t, link, []int{0, 2}, 15*time.Second, "a large tile and a thumbnail beyond, swapped")
	if s := <-stalled; s > 1500*time.Millisecond {
		t.Errorf("the hall's thumbnail stalled %v while the commune's tile grew", s)
	}
	if s := wh.snapshot(); s.layer != 0 {
		t.Errorf("the hall's thumbnail moved to layer %d", s.layer)
	}
	checkClean(t, "commune", wc.snapshot())
	checkClean(t, "hall", wh.snapshot())
	if s := l.wd.snapshot(); s.layer != 2 {
		t.Errorf("the district before the link is on layer %d, want the top", s.layer)
	}
	checkClean(t, "district", l.wd.snapshot())
}

// subscriptionOf is an endpoint peer's one video subscription.
func subscriptionOf(p *Peer) *DownTrack {
	for _, d := range p.DownTracks() {
		if d.sim != nil {
			return d
		}
	}
	return nil
}

// TestRelayCeiling: a link that congestion moved below its far end's need tells it its
// ceiling at once (short of the need without congestion, the estimate may be climbing: no
// ceiling), raises it a layer at a time as its spare estimate fits the next layer in the
// top's place, and lifts it after ceilRetry anyway (the far end asks again, the allocator
// probes before it raises).
func TestRelayCeiling(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	r := &relayLayers{ceil: maxLayers - 1, raw: [maxLayers]float64{130e3, 500e3, 1.4e6}, want: 0b100}
	if r.limit(1, false, 0, t0); r.ceil != 2 {
		t.Fatalf("ceiling %d short of the need without congestion, want none (2)", r.ceil)
	}
	if r.limit(0, true, 0, t0); r.ceil != 0 {
		t.Fatalf("ceiling %d after a congested step down to 0, want 0", r.ceil)
	}
	// The far end asks no more than the ceiling: the need is carried, the spare decides.
	r.want = 0b001
	if r.limit(0, false, 300e3, t0.Add(time.Second)); r.ceil != 0 {
		t.Fatalf("ceiling %d with 300 kbit/s spare, want 0 (the middle layer needs 370 more)", r.ceil)
	}
	if r.limit(0, false, 400e3, t0.Add(time.Second)); r.ceil != 1 {
		t.Fatalf("ceiling %d with 400 kbit/s spare, want 1", r.ceil)
	}
	r.want = 0b010
	if r.limit(1, false, 800e3, t0.Add(2*time.Second)); r.ceil != 1 {
		t.Fatalf("ceiling %d with 800 kbit/s spare, want 1 (the top needs 900 more than the middle)", r.ceil)
	}
	if r.limit(1, false, 0, t0.Add(ceilRetry)); r.ceil != 2 {
		t.Fatalf("ceiling %d %v after it fell, want lifted", r.ceil, ceilRetry)
	}
}

// TestRelayedSourceNeed: what a bridge asks of a source relayed to it is the set of its
// subscriptions' layers: each endpoint's chosen layer and, while it waits for that
// layer's keyframe, the one it still receives; what its own relay links carry; for a tap
// (the recorder), the layer it taps and the top. A subscription Last-N holds back asks
// for nothing.
func TestRelayedSourceNeed(t *testing.T) {
	type sub struct {
		want, current int8
		relay         uint8 // a relay link's layers carried (want, current unused)
		isRelay       bool
	}
	cases := []struct {
		name  string
		subs  []sub
		tap   int // the layer a tap sits on, -1 none
		gated bool
		want  uint8
	}{
		{"nobody", nil, -1, false, 0},
		{"a thumbnail", []sub{{want: 0, current: 0}}, -1, false, 0b001},
		{"a thumbnail and a large tile", []sub{{want: 0, current: 0}, {want: 2, current: 2}}, -1, false, 0b101},
		{"a tile growing: the low layer until the top's keyframe", []sub{{want: 2, current: 0}}, -1, false, 0b101},
		{"a tile not started yet", []sub{{want: 1, current: -1}}, -1, false, 0b010},
		{"a relay link carrying the middle beyond", []sub{{isRelay: true, relay: 0b010}, {want: 0, current: 0}}, -1, false, 0b011},
		{"the recorder on the low layer", nil, 0, false, 0b101},
		{"Last-N holds it back", []sub{{want: 2, current: 2}}, -1, true, 0},
	}
	for _, c := range cases {
		g := &simulcast{}
		for i := range g.layers {
			up := &UpTrack{sim: g, layer: int8(i)}
			up.downs.Store(&[]*DownTrack{})
			up.taps.Store(&[]*Tap{})
			g.layers[i].Store(up)
		}
		g.primary = g.layers[0].Load()
		if c.gated {
			g.primary.gate.Store(&gate{}) // shut
		}
		if c.tap >= 0 {
			g.layers[c.tap].Load().taps.Store(&[]*Tap{{}})
		}
		for _, s := range c.subs {
			d := &DownTrack{up: g.primary, sim: newDownLayers(g, 90000)}
			if s.isRelay {
				d.relay = &relayLayers{}
				d.relay.carried.Store(uint32(s.relay))
			} else {
				d.want.Store(int32(s.want))
				d.sim.current.Store(int32(s.current))
			}
			g.addSub(d)
		}
		if got := g.sourceNeed(); got != c.want {
			t.Errorf("%s: need %03b, want %03b", c.name, got, c.want)
		}
	}
}
