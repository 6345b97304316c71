package sfu

import (
	"fmt"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/wan"
	"github.com/cau-project/cau/sfu/speaker"
)

// slotViewer is a subscriber that receives a meeting's cameras in one video slot.
type slotViewer struct {
	name  string
	e     *testEndpoint
	set   *SlotSet
	watch *layerWatch
}

// newSlotViewer joins a subscriber (opts: its stack) with one video slot following sel.
func newSlotViewer(t *testing.T, b *Bridge, sel *Selector, name string, o endpointOpts) *slotViewer {
	t.Helper()
	v := &slotViewer{name: name, watch: newLayerWatch()}
	o.onVideo = v.watch.read
	v.e = newTestEndpointWith(t, b, name, nil, o)
	set, err := v.e.peer.AddSlots(SlotSetParams{Video: 1, Self: name})
	if err != nil {
		t.Fatal(err)
	}
	v.set = set
	sel.Follow(set)
	return v
}

// layer says "" once the viewer sees layer l (its keyframes' width), the reason otherwise.
func (v *slotViewer) layer(l int) string {
	w := v.watch.snapshot()
	if w.layer == l && w.width == int(simLayers[l].width) {
		return ""
	}
	cur, target := v.set.Video()[0].Layer()
	est, _ := v.e.peer.Estimate()
	return fmt.Sprintf("%s: the viewer sees layer %d width %d, want %d (slot: current %d target %d, estimate %.0f)",
		v.name, w.layer, w.width, l, cur, target, est)
}

// slotMeeting is a three-layer publisher ("chair", pinned) in a selector with one video
// slot, on a bridge with metrics.
func slotMeeting(t *testing.T) (*Bridge, *Metrics, *simRoom, *Selector) {
	t.Helper()
	b, m := newMeteredBridge(t)
	sel := NewSelector(SelectorParams{Speaker: speaker.Params{AudioN: 1, VideoN: 1}, Logger: testLogger()})
	t.Cleanup(sel.Close)
	sel.Pin("chair", true)
	r := newSimRoom(t, b)
	sel.Add(r.track(), "chair")
	return b, m, r, sel
}

// TestSlotShapedLinkDropsLayerAndRecovers is issue 10's shaped step for a subscriber in
// slots (a large meeting): a commune's pion subscriber in a namespace whose downlink tbf
// shapes 3 Mbit/s → 400 kbit/s → 3 Mbit/s receives the chair's three-layer camera in a
// video slot; a district on loopback receives it in its own. The commune's slot leaves the
// top layer within 3 s of the step down, with no wait between frames over 1 s, and is back
// on the top layer within 15 s of the step up, probing first (padding on the slot's RTX
// stream); the district keeps the top layer throughout; every change of layer starts on
// a keyframe, on the slot's one SSRC. The bridge's layer gauge counts both slots. Then the district's tile of the chair drives
// its slot (SlotSet.SetCaps, from the page's view): a middle-sized tile takes the middle
// layer, a hidden one nothing, a full-sized one the top layer again.
func TestSlotShapedLinkDropsLayerAndRecovers(t *testing.T) {
	sh := wan.NewShaped(t, "10.212.0")
	b, m, _, sel := slotMeeting(t)
	sh.SetRate(t, 3000)
	commune := newSlotViewer(t, b, sel, "commune", endpointOpts{api: shapedAPI(t, sh)})
	district := newSlotViewer(t, b, sel, "district", endpointOpts{})
	eventually(t, 60*time.Second, func() string { return commune.layer(2) })
	eventually(t, 30*time.Second, func() string { return district.layer(2) })
	eventually(t, 3*time.Second, func() string { // counted at the allocators' next rounds
		if got := metricValue(t, m.LayerForwarded.WithLabelValues("endpoint", "2")); got != 2 {
			return fmt.Sprintf("layer gauge at the top layer: %.0f, want 2 (both slots)", got)
		}
		return ""
	})
	districtBefore := district.watch.snapshot()

	commune.watch.resetFrozen()
	sh.SetRate(t, 400)
	shapedAt := time.Now()
	eventually(t, 3*time.Second, func() string {
		if s := commune.watch.snapshot(); s.layer < 2 {
			return ""
		}
		return commune.layer(0) + ": want a lower layer"
	})
	dropped := time.Since(shapedAt)
	eventually(t, 10*time.Second, func() string { return commune.layer(0) })
	time.Sleep(2 * time.Second)
	frozen := commune.watch.longestFrozen()
	s0 := commune.watch.snapshot()
	time.Sleep(2 * time.Second)
	s1 := commune.watch.snapshot()
	t.Logf("commune shaped to 400 kbit/s: left the top layer after %v, longest wait between frames %v, then %.0f bit/s",
		dropped.Round(10*time.Millisecond), frozen.Round(time.Millisecond), s1.rate(s0))
	if frozen > time.Second {
		t.Errorf("commune: the picture froze for %v after the step down (limit 1 s)", frozen)
	}
	if s1.layer == 2 {
		t.Error("commune: back on the top layer while shaped")
	}
	if got := metricValue(t, m.LayerChanges.WithLabelValues("endpoint", "down")); got < 1 {
		t.Errorf("layer changes down counted: %.0f", got)
	}

	sh.SetRate(t, 3000)
	liftedAt := time.Now()
	eventually(t, 15*time.Second, func() string { return commune.layer(2) })
	probesOK, probesFailed := commune.e.peer.Probes()
	t.Logf("commune: top layer again after %v; probes ok %d, failed %d", time.Since(liftedAt).Round(100*time.Millisecond),
		probesOK, probesFailed)
	if probesOK == 0 {
		t.Error("commune: no probe succeeded: a slot subscriber's link steps up unprobed")
	}
	if d := district.watch.snapshot(); d.changes != districtBefore.changes || d.layer != 2 {
		t.Errorf("the unshaped district changed layer %d times while the commune was shaped (now layer %d)",
			d.changes-districtBefore.changes, d.layer)
	}
	// (Repairs of lost packets run back in numbering: only the changes are checked.)
	if s := commune.watch.snapshot(); s.badChanges != 0 || s.ssrcs != 1 || s.tsBackwards != 0 {
		t.Errorf("commune: %d of %d layer changes off a keyframe, %d SSRCs, %d timestamps backwards across a switch",
			s.badChanges, s.changes, s.ssrcs, s.tsBackwards)
	}
	checkClean(t, "district", district.watch.snapshot())

	// The district's tile of the chair shrinks to the middle size: its slot takes the
	// middle layer though its link fits the top; hidden, the slot forwards nothing; back
	// to full size, the top layer again.
	set := district.set
	set.SetCaps(map[string]int{"chair": 1}, maxLayers-1)
	eventually(t, 5*time.Second, func() string { return district.layer(1) })
	eventually(t, 3*time.Second, func() string {
		if got := metricValue(t, m.LayerForwarded.WithLabelValues("endpoint", "1")); got != 1 {
			return fmt.Sprintf("layer gauge at the middle layer: %.0f, want 1 (the district's slot)", got)
		}
		return ""
	})
	time.Sleep(time.Second) // two allocator rounds would have raised it
	if err := district.layer(1); err != "" {
		t.Errorf("capped at the middle layer: %s", err)
	}
	set.SetCaps(map[string]int{"chair": -1}, maxLayers-1)
	time.Sleep(300 * time.Millisecond) // the packets on their way
	before := district.watch.snapshot()
	time.Sleep(time.Second)
	if got := district.watch.snapshot().packets - before.packets; got != 0 {
		t.Errorf("a hidden tile's slot received %d packets in 1 s, want none", got)
	}
	if cur, target := set.Video()[0].Layer(); cur != -1 || target != -1 {
		t.Errorf("a hidden tile's slot forwards layer %d (target %d), want none", cur, target)
	}
	set.SetCaps(nil, maxLayers-1)
	eventually(t, 10*time.Second, func() string { return district.layer(2) })
	checkClean(t, "district", district.watch.snapshot())
}
