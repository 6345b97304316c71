package sfu

import (
	"testing"
	"time"
)

// TestLayerSwitchHysteresis walks one source's need through time: a layer goes off only
// after dynacastOffAfter unneeded, comes back at once, and a flap within the hysteresis
// changes nothing.
func TestLayerSwitchHysteresis(t *testing.T) {
	all := [maxLayers]bool{true, true, true}
	type step struct {
		at      time.Duration // since the source arrived
		need    int8
		active  [maxLayers]bool
		changed bool
		on      [maxLayers]bool // turned on at this step
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"everyone needs the top", []step{
			{0, 2, all, false, [3]bool{}},
			{10 * time.Second, 2, all, false, [3]bool{}},
		}},
		{"small tiles: the top two go after the hysteresis", []step{
			{0, 0, all, false, [3]bool{}},
			{dynacastOffAfter - time.Millisecond, 0, all, false, [3]bool{}},
			{dynacastOffAfter, 0, [3]bool{true, false, false}, true, [3]bool{}},
			{dynacastOffAfter + time.Second, 0, [3]bool{true, false, false}, false, [3]bool{}},
		}},
		{"a large tile brings the top back at once", []step{
			{0, 0, all, false, [3]bool{}},
			{4 * time.Second, 0, [3]bool{true, false, false}, true, [3]bool{}},
			{4*time.Second + dynacastTick, 2, all, true, [3]bool{false, true, true}},
		}},
		{"nobody watches: every layer goes, the lowest too", []step{
			{0, -1, all, false, [3]bool{}},
			{dynacastOffAfter, -1, [3]bool{}, true, [3]bool{}},
			{dynacastOffAfter + dynacastTick, 0, [3]bool{true, false, false}, true, [3]bool{true, false, false}},
		}},
		{"a flap within the hysteresis changes nothing", []step{
			{0, 2, all, false, [3]bool{}},
			{time.Second, 0, all, false, [3]bool{}},
			{2 * time.Second, 2, all, false, [3]bool{}},
			{2*time.Second + dynacastOffAfter - time.Millisecond, 0, all, false, [3]bool{}},
			{2*time.Second + dynacastOffAfter, 0, [3]bool{true, false, false}, true, [3]bool{}},
		}},
		{"the middle stays while a middle tile watches", []step{
			{0, 1, all, false, [3]bool{}},
			{dynacastOffAfter, 1, [3]bool{true, true, false}, true, [3]bool{}},
			{dynacastOffAfter + dynacastTick, 0, [3]bool{true, true, false}, false, [3]bool{}},
			{2*dynacastOffAfter + dynacastTick, 0, [3]bool{true, false, false}, true, [3]bool{}},
		}},
	}
	t0 := time.Unix(1_800_000_000, 0)
	for _, c := range cases {
		s := newLayerSwitch(t0)
		for i, st := range c.steps {
			on, off := s.step(t0.Add(st.at), st.need)
			changed := on != [maxLayers]bool{} || off != [maxLayers]bool{}
			if s.active != st.active || changed != st.changed || on != st.on {
				t.Errorf("%s, step %d (need %d at %v): active %v changed %v on %v, want %v %v %v",
					c.name, i, st.need, st.at, s.active, changed, on, st.active, st.changed, st.on)
			}
		}
	}
}

// TestSourceNeed: the highest layer anyone on the bridge needs of a source is the
// largest cap among its subscriptions that Last-N lets through (a relay link's cap being
// what its far end reported, when fresh); the recorder needs the top.
func TestSourceNeed(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	type sub struct {
		maxLayer int
		relay    bool
		reported int8          // the far end's need (relay), needUnknown: never said
		age      time.Duration // how old the report is
	}
	cases := []struct {
		name   string
		subs   []sub
		gated  bool // Last-N holds the source back
		tapped bool // the recorder takes it
		want   int8
	}{
		{"nobody subscribes", nil, false, false, -1},
		{"a subscriber with no view", []sub{{maxLayer: 2}}, false, false, 2},
		{"a thumbnail", []sub{{maxLayer: 0}}, false, false, 0},
		{"a hidden tile and a middle one", []sub{{maxLayer: -1}, {maxLayer: 1}}, false, false, 1},
		{"only hidden tiles", []sub{{maxLayer: -1}, {maxLayer: -1}}, false, false, -1},
		{"Last-N holds it back", []sub{{maxLayer: 2}}, true, false, -1},
		{"the recorder", []sub{{maxLayer: -1}}, false, true, 2},
		{"a relay link whose far end needs the low layer", []sub{{maxLayer: 2, relay: true, reported: 0}}, false, false, 0},
		{"a relay link whose far end needs none", []sub{{maxLayer: 2, relay: true, reported: -1}, {maxLayer: 0}}, false, false, 0},
		{"a relay link that never said", []sub{{maxLayer: 2, relay: true, reported: needUnknown}}, false, false, 2},
		{"a relay link whose report is stale", []sub{{maxLayer: 2, relay: true, reported: -1, age: needStale + time.Second}}, false, false, 2},
	}
	for _, c := range cases {
		g := &simulcast{}
		var layers [maxLayers]*UpTrack
		for i := range layers {
			up := &UpTrack{sim: g, layer: int8(i)}
			up.downs.Store(&[]*DownTrack{})
			up.taps.Store(&[]*Tap{})
			layers[i] = up
			g.layers[i].Store(up)
		}
		g.primary = layers[0]
		if c.gated {
			layers[0].gate.Store(&gate{}) // shut
		}
		if c.tapped {
			layers[2].taps.Store(&[]*Tap{{}})
		}
		for i, s := range c.subs {
			d := &DownTrack{up: layers[0], sub: &Peer{params: PeerParams{Relay: s.relay}}}
			d.maxLayer.Store(int32(s.maxLayer))
			if s.reported != needUnknown {
				d.need.Store(int32(s.reported))
				d.needAt.Store(now.Add(-s.age).UnixNano())
			}
			// A subscription sits in the downs of the layer it receives.
			up := layers[i%maxLayers]
			up.downs.Store(&[]*DownTrack{d})
		}
		if got := g.need(now); got != c.want {
			t.Errorf("%s: need %d, want %d", c.name, got, c.want)
		}
	}
}
