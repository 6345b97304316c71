package sfu

import (
	"fmt"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/internal/testpeer"
	"github.com/cau-project/cau/internal/wan"
)

// shapedAPI is a browser-like pion stack whose only socket is conn (inside a shaped
// namespace): all its media crosses the shaped link.
func shapedAPI(t *testing.T, sh *wan.Shaped) *webrtc.API {
	t.Helper()
	mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: sh.ListenUDP(t)})
	t.Cleanup(func() { _ = mux.Close() })
	return testpeer.API(t, nil, nil, func(se *webrtc.SettingEngine) { se.SetICEUDPMux(mux) })
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
	shapeAndRecover(t, sh, shapedSide{"commune", commune.peer, dc, wc}, shapedSide{"district", nil, dd, wd})
}

// TestSimulcastShapedRelayLinkCarriesLowLayer is the same across a relay link: bridge A
// (here) and bridge B (its sockets in the namespace) are joined by a relay link whose
// A→B direction is shaped. The link's allocator on A carries the source once, at the low
// layer, while shaped; the commune on B keeps receiving; a district on A, before the
// link, keeps the top layer; lifted, the link carries the top layer again.
func TestSimulcastShapedRelayLinkCarriesLowLayer(t *testing.T) {
	sh := wan.NewShaped(t, "10.208.0")
	a := newTestBridge(t)
	var b *Bridge
	sh.Do(t, func() error {
		var err error
		// On the mux: sockets of its own would be bound later, by ICE, outside the namespace.
		b, err = New(Config{ICEUDPPort: 0, ICETCPPort: -1, IncludeLoopback: true, RelayOnMux: true, Logger: testLogger()})
		return err
	})
	t.Cleanup(func() { _ = b.Close() })
	r := newSimRoom(t, a)
	ra, link, far := relayVideo(t, a, b, r.track())
	wc := newLayerWatch()
	commune := newTestEndpointWith(t, b, "commune", nil, endpointOpts{api: shapedAPI(t, sh), onVideo: wc.read})
	if _, err := commune.peer.Subscribe(far, far.ID(), far.StreamID()); err != nil {
		t.Fatal(err)
	}
	_, dd, wd := r.subscribe(t, a, "district", endpointOpts{})
	shapeAndRecover(t, sh, shapedSide{"relay link", ra, link, wc}, shapedSide{"district", nil, dd, wd})
}

// relayVideo joins bridges a and b with a relay link (relayLink), has a's end subscribe
// to up, and waits for the video to arrive at b: link is the relay's down track at a,
// far the track it feeds at b.
func relayVideo(t *testing.T, a, b *Bridge, up *UpTrack) (ra *Peer, link *DownTrack, far *UpTrack) {
	t.Helper()
	relayed := make(chan *UpTrack, 4)
	ra, _ = relayLink(t, a, b, func(up *UpTrack) {
		if up.Kind() == webrtc.RTPCodecTypeVideo {
			relayed <- up
		}
	})
	link, err := ra.Subscribe(up, up.ID(), up.StreamID())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case far = <-relayed:
	case <-time.After(20 * time.Second):
		t.Fatalf("the camera did not arrive over the relay link from %s", up.ID())
	}
	return ra, link, far
}

// relayLink joins bridges a and b with a relay link that carries what a's end subscribes
// to b, as two bridges' agents do; onTrack gets the tracks arriving at b.
func relayLink(t *testing.T, a, b *Bridge, onTrack func(*UpTrack)) (ra, rb *Peer) {
	t.Helper()
	ready := make(chan struct{})
	var err error
	ra, err = a.NewPeer(PeerParams{ID: "relay-a", Relay: true,
		OnCandidate: func(tg Target, c webrtc.ICECandidateInit) {
			<-ready
			if tg == Subscriber {
				_ = rb.AddCandidate(Publisher, c)
			}
		},
		OnSubscriberOffer: func(sdp string) {
			go func() {
				<-ready
				ans, err := rb.HandleOffer(sdp)
				if err == nil {
					err = ra.HandleAnswer(ans)
				}
				if err != nil {
					t.Errorf("relay negotiation: %v", err)
				}
			}()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	rb, err = b.NewPeer(PeerParams{ID: "relay-b", Relay: true, OnTrack: onTrack,
		OnCandidate: func(tg Target, c webrtc.ICECandidateInit) {
			<-ready
			if tg == Publisher {
				_ = ra.AddCandidate(Subscriber, c)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	t.Cleanup(func() { _ = ra.Close(); _ = rb.Close() })
	return ra, rb
}

// shapedSide is one side of a shaping test: the peer whose link is measured (nil for a
// side not shaped), the DownTrack carrying the source on that link, and what the site
// beyond sees.
type shapedSide struct {
	name  string
	peer  *Peer
	down  *DownTrack
	watch *layerWatch
}

// onTop says "" once the side's viewer sees the top layer, the reason otherwise.
func (s shapedSide) onTop() string {
	w := s.watch.snapshot()
	if w.layer == 2 && w.width == 1280 {
		return ""
	}
	cur, target := s.down.Layer()
	est := 0.0
	if s.peer != nil {
		est, _ = s.peer.Estimate()
	}
	return fmt.Sprintf("%s: the viewer sees layer %d width %d (bridge: current %d target %d, estimate %.0f)",
		s.name, w.layer, w.width, cur, target, est)
}

// shapeAndRecover runs the shaping sequence: both sides reach the top layer unshaped;
// shaped to shapedRate, the shaped side's viewer gets the low layer within a few seconds,
// at a rate the link carries with little loss, while the other keeps the top layer;
// lifted, the shaped side gets the top layer back. Every change of layer a viewer sees
// starts at a keyframe, on one SSRC.
func shapeAndRecover(t *testing.T, sh *wan.Shaped, shaped, other shapedSide) {
	t.Helper()
	eventually(t, 60*time.Second, shaped.onTop)
	eventually(t, 30*time.Second, other.onTop)
	otherBefore := other.watch.snapshot()

	sh.SetRate(t, shapedRate)
	shapedAt := time.Now()
	eventually(t, 15*time.Second, func() string {
		if s := shaped.watch.snapshot(); s.layer != 0 || s.width != 320 {
			return shaped.onTop() + ": want the low layer"
		}
		return ""
	})
	dropped := time.Since(shapedAt)
	time.Sleep(2 * time.Second) // the shaper's queue drains
	s0 := shaped.watch.snapshot()
	time.Sleep(4 * time.Second)
	s1 := shaped.watch.snapshot()
	rate := s1.rate(s0)
	lost := float64(s1.gaps-s0.gaps) / float64(max(s1.packets-s0.packets+s1.gaps-s0.gaps, 1))
	est, _ := shaped.peer.Estimate()
	t.Logf("%s shaped to %d kbit/s: low layer after %v; then %.0f bit/s received over 4 s, %.1f %% lost, estimate %.0f",
		shaped.name, shapedRate, dropped.Round(10*time.Millisecond), rate, 100*lost, est)
	if rate > shapedRate*1000 || rate < 50_000 {
		t.Errorf("%s: %.0f bit/s received on a %d kbit/s link", shaped.name, rate, shapedRate)
	}
	if lost > 0.05 {
		t.Errorf("%s: %.1f %% of the video packets lost at the low layer", shaped.name, 100*lost)
	}
	if s1.layer == 2 {
		t.Errorf("%s: back on the top layer while shaped", shaped.name)
	}
	if o := other.watch.snapshot(); o.changes != otherBefore.changes || o.layer != 2 {
		t.Errorf("the unshaped %s changed layer %d times while %s was shaped (now layer %d)",
			other.name, o.changes-otherBefore.changes, shaped.name, o.layer)
	}

	sh.SetRate(t, 0)
	liftedAt := time.Now()
	eventually(t, 60*time.Second, shaped.onTop)
	t.Logf("%s: limit lifted, top layer again after %v", shaped.name, time.Since(liftedAt).Round(100*time.Millisecond))
	s := shaped.watch.snapshot()
	if s.badChanges != 0 || s.ssrcs != 1 || s.tsBackwards != 0 {
		t.Errorf("%s: %d of %d layer changes off a keyframe, %d SSRCs, %d timestamps backwards across a switch",
			shaped.name, s.badChanges, s.changes, s.ssrcs, s.tsBackwards)
	}
	checkClean(t, other.name, other.watch.snapshot())
}
