package signaling_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/protocol"
)

// TestViewDrivesLayersAndDynacast: a Go client publishes a three-layer camera (q, h, f)
// and follows publish_layers as the join page does; a second one watches it at the top
// layer and sends views. A middle tile takes it down to the middle layer (at once: the
// link is not congested), a small tile to the low layer, and after the hysteresis the publisher is told
// to send only that; a large tile brings the top layer back (at once to the publisher,
// then to the watcher); a hidden tile receives no video while the audio goes on, and the
// publisher is told nobody needs any layer.
func TestViewDrivesLayersAndDynacast(t *testing.T) {
	ts := startServer(t, nil)
	const meeting = "m-view"
	pub := ts.join(t, meeting, "central", "chair")
	synth, err := pub.PublishWith(context.Background(), client.PublishOptions{Simulcast: true, FPS: 20,
		PacketsPerFrame: 4, PayloadBytes: 500})
	if err != nil {
		t.Fatal(err)
	}
	stream := pub.Self.Streams[protocol.SourceCamera]
	sub := ts.join(t, meeting, "central", "watcher")
	eventually(t, 20*time.Second, func() string { return receivesFrom(sub, pub, 20) })

	tile := func(height int) { showTile(t, sub, pub, height) }
	told := func(want ...string) func() string { return toldLayers(pub, want...) }
	mainly := func(layer int) func() string { return receivesMainly(sub, stream, layer) }

	// No view yet: the link fits the top layer. Then 180 CSS pixels on a screen of
	// devicePixelRatio 2: the middle layer.
	eventually(t, 45*time.Second, mainly(2))
	tile(180 * 2)
	eventually(t, 20*time.Second, mainly(1))
	tile(180)
	eventually(t, 20*time.Second, mainly(0))
	eventually(t, 20*time.Second, told("q"))
	sent := synth.Sent().VideoPackets
	time.Sleep(time.Second)
	perSecond := synth.Sent().VideoPackets - sent
	// The Synth sends a quarter of the packets per frame on q, half on h, all on f.
	if perSecond > 20*2 {
		t.Errorf("the publisher sent %d video packets in a second with only q active, want about 20", perSecond)
	}

	asked := time.Now()
	tile(720)
	eventually(t, 5*time.Second, told("q", "h", "f"))
	toPublisher := time.Since(asked)
	eventually(t, 45*time.Second, mainly(2))
	t.Logf("a large tile: the publisher sends all layers again after %v, the watcher receives the top layer after %v",
		toPublisher.Round(10*time.Millisecond), time.Since(asked).Round(100*time.Millisecond))

	tile(0)
	eventually(t, 10*time.Second, func() string {
		if w := watchLayers(sub, stream, time.Second); w.total() > 0 {
			return fmt.Sprintf("the watcher of a hidden tile received %v video packets in 1 s", w)
		}
		return ""
	})
	keepsReceiving(t, sub, pub, "audio", 25, 5*time.Second)
	eventually(t, 10*time.Second, told())
	if w := watchLayers(sub, stream, time.Second); w.total() > 0 {
		t.Errorf("the hidden tile received %v video packets after the publisher paused", w)
	}
}

// showTile sends watcher's view: pub's camera in a tile height device pixels high.
func showTile(t *testing.T, watcher, pub *client.Client, height int) {
	t.Helper()
	if err := watcher.View([]protocol.Tile{{Participant: pub.Self.ID, Source: protocol.SourceCamera, Height: height}}); err != nil {
		t.Fatal(err)
	}
}

// toldLayers checks that pub was last told to send its camera's layers want.
func toldLayers(pub *client.Client, want ...string) func() string {
	return func() string {
		got, n := pub.PublishLayers()
		if cam, ok := got[protocol.SourceCamera]; !ok || !slices.Equal(cam, want) {
			return fmt.Sprintf("the publisher was told %v (%d messages), want camera %v", got, n, want)
		}
		return ""
	}
}

// receivesMainly checks that watcher receives stream mainly at layer (and, below the
// top, nothing of the top) over a second.
func receivesMainly(watcher *client.Client, stream string, layer int) func() string {
	return func() string {
		if w := watchLayers(watcher, stream, time.Second); w.main() != layer || (layer < 2 && w[2] > 0) {
			return fmt.Sprintf("the watcher receives %v (low, middle, top packets in 1 s), want mainly layer %d", w, layer)
		}
		return ""
	}
}

// TestViewAcrossTheCascade: the publisher's bridge is a province's (over the control
// socket), its watcher at central, beyond the relay link. The watcher's small tile
// reaches the province bridge as the link's need (CAUN), which pauses the publisher's
// middle and top layers; its large tile brings them back (central's allocator still
// knows what the paused top layer costs, from CAUR), and the watcher gets the top layer;
// hidden, nobody needs any layer.
func TestViewAcrossTheCascade(t *testing.T) {
	c := startCascade(t, "prov")
	const meeting = "m-view-cascade"
	pub := c.join(t, meeting, "prov", "site prov")
	if _, err := pub.PublishWith(context.Background(), client.PublishOptions{Simulcast: true, FPS: 20,
		PacketsPerFrame: 4, PayloadBytes: 500}); err != nil {
		t.Fatal(err)
	}
	stream := pub.Self.Streams[protocol.SourceCamera]
	watcher := c.join(t, meeting, "central", "watcher")
	eventually(t, 30*time.Second, func() string { return receivesFrom(watcher, pub, 20) })

	showTile(t, watcher, pub, 200)
	eventually(t, 20*time.Second, receivesMainly(watcher, stream, 0))
	eventually(t, 20*time.Second, toldLayers(pub, "q"))
	// The paused layers' measured rates fall to nothing (the allocators smooth over 500
	// ms ticks): only what CAUR remembers of them can bring them back now.
	time.Sleep(5 * time.Second)
	asked := time.Now()
	showTile(t, watcher, pub, 1000)
	eventually(t, 10*time.Second, toldLayers(pub, "q", "h", "f"))
	toPublisher := time.Since(asked)
	eventually(t, 60*time.Second, receivesMainly(watcher, stream, 2))
	t.Logf("a large tile beyond the relay link: the publisher sends all layers again after %v, the watcher receives the top layer after %v",
		toPublisher.Round(10*time.Millisecond), time.Since(asked).Round(100*time.Millisecond))
	showTile(t, watcher, pub, 0)
	eventually(t, 20*time.Second, toldLayers(pub))
}
