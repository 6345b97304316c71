package sfu

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/internal/wan"
)

// pinRate is the shaped link of TestSimulcastShapedLinkPinFirst: room for one source's
// middle layer (≈ 700 kbit/s) beside another's low one, not for two middle layers.
const pinRate = 1600

// TestSimulcastShapedLinkPinFirst is issue 10's "pinned streams get first call on
// bandwidth" on a real shaped link: a commune's pion subscriber in a network namespace
// watches two three-layer publishers. Shaped so that only one of them fits above the low
// layer, the allocator gives that place to one; the subscriber then pins the other
// (DownTrack.SetPinned, what signaling's pin does through bridge.Agent.PinFor), and the
// place moves to it: the pinned source rises, the other falls to the low layer. Every
// switch starts on a keyframe, on one SSRC.
func TestSimulcastShapedLinkPinFirst(t *testing.T) {
	sh := wan.NewShaped(t, "10.211.0")
	b := newTestBridge(t) // after the namespace: its sockets include the veth's address
	rooms := []*simRoom{newSimRoomNamed(t, b, "chair"), newSimRoomNamed(t, b, "speaker")}
	watches := map[string]*layerWatch{"stream-chair": newLayerWatch(), "stream-speaker": newLayerWatch()}
	commune := newTestEndpointWith(t, b, "commune", nil, endpointOpts{api: shapedAPI(t, sh), onVideo: func(tr *webrtc.TrackRemote) {
		if w := watches[tr.StreamID()]; w != nil {
			w.read(tr)
		}
	}})
	var downs []*DownTrack
	var ws []*layerWatch
	for _, r := range rooms {
		downs, ws = append(downs, r.subscribeOn(t, commune.peer)), append(ws, watches[r.track().StreamID()])
	}
	layers := func() string {
		est, _ := commune.peer.Estimate()
		var parts []string
		for i, w := range ws {
			s := w.snapshot()
			cur, target := downs[i].Layer()
			parts = append(parts, fmt.Sprintf("%s: sees layer %d (bridge %d→%d, pinned %v)", rooms[i].pub.name, s.layer, cur, target, downs[i].Pinned()))
		}
		return fmt.Sprintf("%s; estimate %.0f", strings.Join(parts, ", "), est)
	}
	eventually(t, 90*time.Second, func() string {
		if ws[0].snapshot().layer != 2 || ws[1].snapshot().layer != 2 {
			return "unshaped, both should reach the top layer: " + layers()
		}
		return ""
	})

	// Shaped: one source keeps the middle layer, the other gets the low one.
	sh.SetRate(t, pinRate)
	favoured := -1
	eventually(t, 30*time.Second, func() string {
		a, c := ws[0].snapshot().layer, ws[1].snapshot().layer
		switch {
		case a == 1 && c == 0:
			favoured = 0
		case a == 0 && c == 1:
			favoured = 1
		default:
			return "shaped, want one source at the middle layer and one at the low: " + layers()
		}
		return ""
	})
	t.Logf("shaped to %d kbit/s, unpinned: %s", pinRate, layers())

	// The subscriber pins the other one: the middle layer moves to it.
	other := 1 - favoured
	downs[other].SetPinned(true)
	pinnedAt := time.Now()
	eventually(t, 30*time.Second, func() string {
		if ws[other].snapshot().layer != 1 || ws[favoured].snapshot().layer != 0 {
			return "pinned, want the pinned source at the middle layer and the other at the low: " + layers()
		}
		return ""
	})
	t.Logf("pinned %s: it has the middle layer after %v: %s", rooms[other].pub.name, time.Since(pinnedAt).Round(10*time.Millisecond), layers())
	// It keeps it while pinned.
	for range 5 {
		time.Sleep(time.Second)
		if l := ws[other].snapshot().layer; l < ws[favoured].snapshot().layer {
			t.Fatalf("the pinned source fell below the other: %s", layers())
		}
	}
	sh.SetRate(t, 0)
	// Repairs arrive behind newer packets on a shaped link; switches must still be clean.
	for i, w := range ws {
		if s := w.snapshot(); s.badChanges != 0 || s.ssrcs != 1 || s.tsBackwards != 0 {
			t.Errorf("%s: %d of %d layer changes off a keyframe, %d SSRCs, %d timestamps backwards across a switch",
				rooms[i].pub.name, s.badChanges, s.changes, s.ssrcs, s.tsBackwards)
		}
	}
}
