package sfu

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// newMeteredBridge is newTestBridge with metrics, returned too.
func newMeteredBridge(t *testing.T) (*Bridge, *Metrics) {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{ICEUDPPort: 0, ICETCPPort: -1, IncludeLoopback: true, Logger: testLogger(), Metrics: m})
	if err != nil {
		t.Fatalf("new bridge: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, m
}

// metricValue reads one counter or gauge (of a vector: v.WithLabelValues(...)).
func metricValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// linkBytes is what a relay link's DownTrack sends over span.
func linkBytes(d *DownTrack, span time.Duration) uint64 {
	before := d.BytesSent()
	time.Sleep(span)
	return d.BytesSent() - before
}

// neededLink is two bridges joined by a relay link that carries a three-layer camera
// from a to b: the link's DownTrack on a, the camera as it arrives at b, and a district
// on a (before the link) watching it.
type neededLink struct {
	a, b    *Bridge
	metrics *Metrics // a's
	ra      *Peer
	link    *DownTrack
	far     *UpTrack
	dd      *DownTrack
	wd      *layerWatch
}

// newNeededLink builds a neededLink; silent makes b a bridge that reports no needs.
func newNeededLink(t *testing.T, silent bool) *neededLink {
	t.Helper()
	l := &neededLink{}
	l.a, l.metrics = newMeteredBridge(t)
	l.b = newTestBridge(t)
	l.b.silentNeeds = silent
	r := newSimRoom(t, l.a)
	l.ra, l.link, l.far = relayVideo(t, l.a, l.b, r.track())
	_, l.dd, l.wd = r.subscribe(t, l.a, "district", endpointOpts{})
	return l
}

// thumbnail adds a commune at b that shows the camera as a thumbnail (low layer at most).
func (l *neededLink) thumbnail(t *testing.T) (*testEndpoint, *DownTrack, *layerWatch) {
	t.Helper()
	wc := newLayerWatch()
	commune := newTestEndpointWith(t, l.b, "commune", nil, endpointOpts{onVideo: wc.read})
	cd, err := commune.peer.Subscribe(l.far, l.far.ID(), l.far.StreamID())
	if err != nil {
		t.Fatal(err)
	}
	cd.SetMaxLayer(0)
	return commune, cd, wc
}

// TestRelayLinkWithoutNeedsCarriesWhatItFits is the reference for the test below, and
// what a link to a bridge that reports no needs (one from before them) does: it carries
// the layer its estimate fits, the top one, whether anyone beyond watches or not.
func TestRelayLinkWithoutNeedsCarriesWhatItFits(t *testing.T) {
	l := newNeededLink(t, true)
	eventually(t, 30*time.Second, func() string {
		if cur, _ := l.link.Layer(); cur != 2 {
			return "the link has not reached the top layer"
		}
		return ""
	})
	n := linkBytes(l.link, 3*time.Second)
	t.Logf("without needs, nobody beyond: the link carried %.0f kbit/s of the camera", float64(n)*8/3/1000)
	if l.link.Held() || n < 100_000 {
		t.Errorf("the link stopped the camera (held %v, %d bytes in 3 s) without any need reported", l.link.Held(), n)
	}
	_, _, wc := l.thumbnail(t)
	eventually(t, 20*time.Second, func() string {
		if s := wc.snapshot(); s.packets == 0 {
			return "the commune receives nothing"
		}
		return ""
	})
	n = linkBytes(l.link, 3*time.Second)
	t.Logf("without needs, a thumbnail beyond: the link carried %.0f kbit/s of the camera (layer %d)",
		float64(n)*8/3/1000, wc.snapshot().layer)
}

// TestRelayLinkCarriesWhatIsNeeded is issue 10's "along the tree" on one relay link:
// bridge A holds a three-layer publisher and a relay link to bridge B, which subscribes to
// the camera. While nobody at B watches it, the link stops the stream (B says so, A stops
// forwarding it); a commune at B that shows it as a thumbnail (low layer at most) gets the
// low layer over the link, although the link could carry the top; a district at A keeps
// the top layer throughout. When the commune enlarges the tile, the top layer crosses the
// link within a few seconds; when it hides it, the stream stops crossing again.
func TestRelayLinkCarriesWhatIsNeeded(t *testing.T) {
	l := newNeededLink(t, false)
	link, ra, metrics, dd, wd := l.link, l.ra, l.metrics, l.dd, l.wd

	// Nobody at B: the link stops the stream.
	arrived := time.Now()
	eventually(t, 15*time.Second, func() string {
		if !link.Held() {
			cur, target := link.Layer()
			return "the link still forwards the camera nobody beyond watches (layer " +
				strconv.Itoa(cur) + ", target " + strconv.Itoa(target) + ")"
		}
		return ""
	})
	t.Logf("nobody beyond: the link stopped the camera %v after it arrived", time.Since(arrived).Round(10*time.Millisecond))
	time.Sleep(500 * time.Millisecond) // what was in flight
	if n := linkBytes(link, 2*time.Second); n > 2000 {
		t.Errorf("the link sent %d bytes of the camera in 2 s while nobody beyond needed it", n)
	}
	if p := metricValue(t, metrics.LayerPauses.WithLabelValues("relay")); p < 1 {
		t.Errorf("cau_bridge_layer_pauses_total{link=relay} = %v after the link stopped a stream", p)
	}

	// A commune at B shows it as a thumbnail: the low layer crosses, and no more.
	commune, cd, wc := l.thumbnail(t)
	awaitLayer(t, wc, 0, 320, link, 20*time.Second, "a thumbnail beyond the link")
	// Long enough for both links' estimates to fit the top layer (they grow to what the
	// source's top layer would take, whatever is sent).
	eventually(t, 30*time.Second, func() string {
		ea, _ := ra.Estimate()
		eb, _ := commune.peer.Estimate()
		if ea < 1.8e6 || eb < 1.8e6 {
			return "estimates still low: link " + strconv.Itoa(int(ea)) + ", commune " + strconv.Itoa(int(eb))
		}
		return ""
	})
	s0 := wc.snapshot()
	lb := linkBytes(link, 3*time.Second)
	if s := wc.snapshot(); s.layer != 0 || s.changes != s0.changes {
		t.Errorf("the commune's thumbnail moved off the low layer: layer %d, %d changes", s.layer, s.changes-s0.changes)
	}
	if cur, target := link.Layer(); cur != 0 || target != 0 {
		t.Errorf("the link carries layer %d (target %d) for a thumbnail", cur, target)
	}
	t.Logf("thumbnail beyond: the link carried %.0f kbit/s of the camera", float64(lb)*8/3/1000)
	if lb*8/3 > 300_000 {
		t.Errorf("the link carried %d bit/s for a thumbnail (the low layer is about 130 kbit/s)", lb*8/3)
	}

	// The commune enlarges the tile: the top layer comes over the link.
	cd.SetMaxLayer(2)
	awaitLayer(t, wc, 2, 1280, link, 30*time.Second, "the tile enlarged beyond the link")
	lb = linkBytes(link, 3*time.Second)
	t.Logf("a full tile beyond: the link carried %.0f kbit/s of the camera", float64(lb)*8/3/1000)

	// The commune hides it: the link stops it again.
	cd.SetMaxLayer(-1)
	asked := time.Now()
	eventually(t, 15*time.Second, func() string {
		if !link.Held() {
			return "the link still forwards the hidden camera"
		}
		return ""
	})
	t.Logf("hidden beyond the link: stopped after %v", time.Since(asked).Round(10*time.Millisecond))
	checkClean(t, "commune", wc.snapshot())
	if s := wd.snapshot(); s.layer != 2 {
		cur, target := dd.Layer()
		t.Errorf("the district before the link is on layer %d (bridge %d, target %d), want the top", s.layer, cur, target)
	}
	checkClean(t, "district", wd.snapshot())
}

// TestLayerAppPackets: the CAUR and CAUN packets survive the RTCP wire format, and short
// ones are refused, not misread.
func TestLayerAppPackets(t *testing.T) {
	raw, err := rtcp.Marshal([]rtcp.Packet{ratesPacket(42, []float64{130e3, 0, 1.4e6}), needPacket(42, -1), needPacket(43, 2)})
	if err != nil {
		t.Fatal(err)
	}
	pkts, err := rtcp.Unmarshal(raw)
	if err != nil || len(pkts) != 3 {
		t.Fatalf("unmarshal: %d packets, %v", len(pkts), err)
	}
	r, err := parseRates(pkts[0].(*rtcp.ApplicationDefined))
	if err != nil || r != [maxLayers]uint32{130e3, 0, 1.4e6} {
		t.Fatalf("rates %v, %v", r, err)
	}
	for i, want := range []int8{-1, 2} {
		a := pkts[1+i].(*rtcp.ApplicationDefined)
		if l, err := parseNeed(a); err != nil || l != want || a.Name != appNeed {
			t.Fatalf("need %d: %d %v (%s)", i, l, err, a.Name)
		}
	}
	if _, err := parseRates(&rtcp.ApplicationDefined{Name: appRates, Data: []byte{0, 0, 0, 1}}); err == nil {
		t.Fatal("a short CAUR was read")
	}
	if _, err := parseNeed(&rtcp.ApplicationDefined{Name: appNeed}); err == nil {
		t.Fatal("an empty CAUN was read")
	}
	if l, _ := parseNeed(&rtcp.ApplicationDefined{Name: appNeed, Data: []byte{0x7f, 0, 0, 0}}); l != maxLayers-1 {
		t.Fatalf("a need of 127 read as %d, want clamped to %d", l, maxLayers-1)
	}
}

// FuzzLayerApp feeds arbitrary RTCP to what reads the layer APP packets: no panic, and
// whatever is stored stays in range.
func FuzzLayerApp(f *testing.F) {
	seed, _ := rtcp.Marshal([]rtcp.Packet{ratesPacket(7, []float64{1, 2, 3}), needPacket(7, 1)})
	f.Add(seed)
	f.Add([]byte{0x80, 204, 0, 2, 0, 0, 0, 7, 'C', 'A', 'U', 'N'})
	f.Fuzz(func(t *testing.T, b []byte) {
		pkts, err := rtcp.Unmarshal(b)
		if err != nil {
			return
		}
		for _, p := range pkts {
			a, ok := p.(*rtcp.ApplicationDefined)
			if !ok {
				continue
			}
			if l, err := parseNeed(a); err == nil && (l < -1 || l >= maxLayers) {
				t.Fatalf("need %d out of range", l)
			}
			_, _ = parseRates(a)
		}
	})
}

// TestNeedTravelsTwoHops: a camera relayed A → B → C. While nobody at B or C watches it,
// both links stop it (the middle link's single layer is held; B, then needing nothing,
// says so to A). A commune at C that shows it as a thumbnail brings the low layer over
// both links; enlarged, the top layer; every change it sees starts at a keyframe, its
// numbering continuous across the held time.
func TestNeedTravelsTwoHops(t *testing.T) {
	l := newNeededLink(t, false)
	c := newTestBridge(t)
	_, mid, farC := relayVideo(t, l.b, c, l.far)
	eventually(t, 15*time.Second, func() string {
		if !l.link.Held() || !mid.Held() {
			return "nobody at B or C: first link held " + strconv.FormatBool(l.link.Held()) +
				", second " + strconv.FormatBool(mid.Held())
		}
		return ""
	})
	time.Sleep(500 * time.Millisecond)
	if n, m := linkBytes(l.link, time.Second), mid.BytesSent(); n > 1000 {
		t.Errorf("the first link sent %d bytes in 1 s while nobody beyond needed the camera (second link: %d in all)", n, m)
	}

	wc := newLayerWatch()
	commune := newTestEndpointWith(t, c, "commune", nil, endpointOpts{onVideo: wc.read})
	cd, err := commune.peer.Subscribe(farC, farC.ID(), farC.StreamID())
	if err != nil {
		t.Fatal(err)
	}
	cd.SetMaxLayer(0)
	awaitLayer(t, wc, 0, 320, l.link, 20*time.Second, "a thumbnail two links away")
	if cur, _ := l.link.Layer(); cur != 0 || mid.Held() {
		t.Errorf("for a thumbnail two links away the first link carries layer %d, the second held %v", cur, mid.Held())
	}
	cd.SetMaxLayer(2)
	awaitLayer(t, wc, 2, 1280, l.link, 60*time.Second, "the tile enlarged two links away")
	checkClean(t, "commune at C", wc.snapshot())
}

// awaitLayer waits up to d for w to show layer at width, and logs how long that took
// under what; a failure says which layer link, the first relay link on the way, forwards.
func awaitLayer(t *testing.T, w *layerWatch, layer, width int, link *DownTrack, d time.Duration, what string) {
	t.Helper()
	asked := time.Now()
	eventually(t, d, func() string {
		if s := w.snapshot(); s.layer != layer || s.width != width {
			cur, target := link.Layer()
			return fmt.Sprintf("%s: the commune sees layer %d at %d px; the relay link forwards %d, target %d",
				what, s.layer, s.width, cur, target)
		}
		return ""
	})
	t.Logf("%s: layer %d after %v", what, layer, time.Since(asked).Round(10*time.Millisecond))
}
