package sfu

import (
	"fmt"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/internal/wan"
)

// shapedAPI is a browser-like pion stack whose only socket is conn (inside a shaped
// namespace): all its media crosses the shaped link.
func shapedAPI(t *testing.T, sh *wan.Shaped) *webrtc.API {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: sh.ListenUDP(t)})
	t.Cleanup(func() { _ = mux.Close() })
	se.SetICEUDPMux(mux)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// shapedRate is the commune's link while shaped (issue 10's poor link: a share of
// 1–2 Mbit/s). The low layer fits it, the middle one (≈ 700 kbit/s) does not.
const shapedRate = 600

// TestSimulcastShapedLinkDropsLayerAndRecovers is the WAN test of issue 10 for a
// subscriber: a commune's pion subscriber sits in a network namespace whose downlink the
// test shapes with tbf; a district subscriber on loopback watches the same three-layer
// publisher. Unshaped, both reach the top layer. Shaped to 600 kbit/s, the commune's link
// estimate falls and the bridge moves it to the low layer (its keyframes say 320 wide, the
// bit rate fits the link, little is lost) while the district keeps the top layer. With the
// limit lifted the commune returns to the top layer. Every switch starts at a keyframe, on
// one SSRC.
func TestSimulcastShapedLinkDropsLayerAndRecovers(t *testing.T) {
	sh := wan.NewShaped(t, "10.207.0")
	b := newTestBridge(t) // after the namespace: its sockets include the veth's address
	r := newSimRoom(t, b)
	commune, dc, wc := r.subscribe(t, b, "commune", endpointOpts{api: shapedAPI(t, sh)})
	_, dd, wd := r.subscribe(t, b, "district", endpointOpts{})

	top := func(name string, d *DownTrack, w *layerWatch, e *testEndpoint) func() string {
		return func() string {
			s := w.snapshot()
			cur, target := d.Layer()
			est := 0.0
			if e != nil {
				est, _ = e.peer.Estimate()
			}
			if s.layer != 2 || s.width != 1280 {
				return fmt.Sprintf("%s sees layer %d width %d (bridge: current %d target %d, estimate %.0f)", name, s.layer, s.width, cur, target, est)
			}
			return ""
		}
	}
	eventually(t, 60*time.Second, top("commune", dc, wc, commune))
	eventually(t, 30*time.Second, top("district", dd, wd, nil))
	districtBefore := wd.snapshot()

	sh.SetRate(t, shapedRate)
	shapedAt := time.Now()
	eventually(t, 15*time.Second, func() string {
		if s := wc.snapshot(); s.layer != 0 || s.width != 320 {
			cur, target := dc.Layer()
			est, _ := commune.peer.Estimate()
			return fmt.Sprintf("shaped commune sees layer %d width %d (bridge: current %d target %d, estimate %.0f)", s.layer, s.width, cur, target, est)
		}
		return ""
	})
	dropped := time.Since(shapedAt)
	time.Sleep(2 * time.Second) // the shaper's queue drains
	s0 := wc.snapshot()
	time.Sleep(4 * time.Second)
	s1 := wc.snapshot()
	rate := s1.rate(s0)
	lost := float64(s1.gaps-s0.gaps) / float64(max(s1.packets-s0.packets+s1.gaps-s0.gaps, 1))
	est, _ := commune.peer.Estimate()
	t.Logf("shaped to %d kbit/s: low layer after %v; then %.0f bit/s received over 4 s, %.1f %% lost, estimate %.0f",
		shapedRate, dropped.Round(10*time.Millisecond), rate, 100*lost, est)
	if rate > shapedRate*1000 || rate < 50_000 {
		t.Errorf("commune receives %.0f bit/s on a %d kbit/s link", rate, shapedRate)
	}
	if lost > 0.05 {
		t.Errorf("commune lost %.1f %% of its video packets at the low layer", 100*lost)
	}
	if s1.layer == 2 {
		t.Errorf("commune is back on the top layer while shaped")
	}
	if d := wd.snapshot(); d.changes != districtBefore.changes || d.layer != 2 {
		t.Errorf("the unshaped district changed layer %d times while the commune was shaped (now layer %d)",
			d.changes-districtBefore.changes, d.layer)
	}

	sh.SetRate(t, 0)
	liftedAt := time.Now()
	eventually(t, 60*time.Second, top("commune", dc, wc, commune))
	t.Logf("limit lifted: top layer again after %v", time.Since(liftedAt).Round(100*time.Millisecond))
	s := wc.snapshot()
	if s.badChanges != 0 || s.ssrcs != 1 || s.tsBackwards != 0 {
		t.Errorf("commune: %d of %d layer changes off a keyframe, %d SSRCs, %d timestamps backwards across a switch",
			s.badChanges, s.changes, s.ssrcs, s.tsBackwards)
	}
	checkClean(t, "district", wd.snapshot())
}
