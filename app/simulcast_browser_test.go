package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/internal/testbrowser"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/protocol"
)

// TestBrowserPublishesSimulcast: Chromium joins through the real join page, which sends
// the camera as three layers (RIDs q, h, f); the page's own statistics show the layers
// leaving, and a pion endpoint at another site receives the camera as one stream that
// starts on a keyframe.
func TestBrowserPublishesSimulcast(t *testing.T) {
	s := newStage(t, false)
	a := s.app
	chair := s.browsers(testbrowser.Options{}, "chair")[0]
	if err := chair.Open(s.joinURL(a.Keys(), "m1", "hcm", "Chủ trì", auth.RoleChair), "join",
		`window.cauState && window.cauState.joined`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	layers := `(async () => { const st = await window.cauState.stats();
		const out = (st && st.publisher && st.publisher.outbound) || [];
		return out.filter((r) => r.kind === 'video' && r.rid && r.packetsSent > 0).map((r) => r.rid).sort().join(','); })()`
	var rids string
	testutil.Eventually(t, 30*time.Second, func() string {
		var err error
		if rids, err = testbrowser.Await[string](chair, layers, 5*time.Second); err != nil {
			return err.Error()
		}
		if len(rids) < len("f,h,q") {
			return fmt.Sprintf("the page sends the camera layers %q, want f,h,q", rids)
		}
		return ""
	})
	tok, _ := a.Keys().Sign(auth.Claims{Use: auth.UseJoin, Meeting: "m1", Site: "ha-noi", Name: "Xã", Role: auth.RoleParticipant}, time.Hour)
	c, err := client.Dial(context.Background(), wsURL(a), tok, client.Options{Loopback: true, Logger: testutil.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var video *client.Stream
	var chairP protocol.Participant
	testutil.Eventually(t, 30*time.Second, func() string {
		for _, p := range c.Participants() {
			if st := c.Stream(p.Streams[protocol.SourceCamera], "video"); st != nil && st.Packets.Load() > 50 {
				video, chairP = st, p
				return ""
			}
		}
		return "the pion endpoint has no camera from the page yet"
	})
	if video.FirstKeyframe.Load() != 1 {
		t.Errorf("the first camera packet from the page was not a keyframe's")
	}
	t.Logf("page sends layers %s; the endpoint got %d packets of one stream", rids, video.Packets.Load())
	viewAndDynacast(t, a, chair, c, chairP)
}

// viewAndDynacast goes on from TestBrowserPublishesSimulcast (issue 10): the pion
// endpoint shows the page's camera in a small tile and receives the low layer; nobody
// else watches, so the bridge tells the page to pause its middle and top layers, and the
// page's own statistics show their bytes stop; a large tile brings them back, and the
// endpoint the top layer; a hidden tile receives no video while the audio goes on.
func viewAndDynacast(t *testing.T, a *app.App, page *testbrowser.Browser, c *client.Client, chair protocol.Participant) {
	peer := a.Signaling().PeerOf("m1", c.Self.ID)
	key := ids.StreamKey{Participant: ids.ParticipantID(chair.ID), Source: protocol.SourceCamera}
	forwarded := func() (protocol.StreamLayer, bool) {
		for _, ps := range a.Signaling().Local().Agent().PeerStats() {
			if ps.Peer == peer {
				for _, l := range ps.Layers {
					if l.Key == key {
						return l, true
					}
				}
			}
		}
		return protocol.StreamLayer{}, false
	}
	tile := func(height int) {
		t.Helper()
		if err := c.View([]protocol.Tile{{Participant: chair.ID, Source: protocol.SourceCamera, Height: height}}); err != nil {
			t.Fatal(err)
		}
	}
	// bytesSent per RID of the page's camera, and over a window each layer's kbit/s.
	const sentJS = `(async () => { const st = await window.cauState.stats(); const out = {};
		for (const r of (st && st.publisher && st.publisher.outbound) || []) if (r.kind === 'video' && r.rid) out[r.rid] = r.bytesSent || 0;
		return out; })()`
	rates := func(span time.Duration) map[string]float64 {
		t.Helper()
		before, err := testbrowser.Await[map[string]float64](page, sentJS, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(span)
		after, err := testbrowser.Await[map[string]float64](page, sentJS, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for rid, n := range after {
			out[rid] = 8 * (n - before[rid]) / span.Seconds() / 1e3
		}
		return out
	}
	total := func(r map[string]float64) float64 { return r["q"] + r["h"] + r["f"] }

	// The page reports its own tiles: the endpoint's (no camera, initials shown) at its
	// size, and hidden when the tile is hidden.
	chairPeer := a.Signaling().PeerOf("m1", chair.ID)
	cKey := ids.StreamKey{Participant: ids.ParticipantID(c.Self.ID), Source: protocol.SourceCamera}
	pageCap := func(want func(int) bool, what string) {
		t.Helper()
		testutil.Eventually(t, 10*time.Second, func() string {
			if v, ok := a.Signaling().Local().Agent().ViewOf(chairPeer)[cKey]; !ok || !want(v) {
				return fmt.Sprintf("the page's view caps the endpoint's camera at %d (named %v), want %s", v, ok, what)
			}
			return ""
		})
	}
	pageCap(func(l int) bool { return l >= 0 }, "a layer")
	showTile := func(display string) {
		testbrowser.Eval[bool](t, page, fmt.Sprintf(`(() => { const el = document.querySelector('.tile[data-participant=%q]');
			if (el) el.style.display = %q; return !!el; })()`, c.Self.ID, display))
	}
	showTile("none")
	pageCap(func(l int) bool { return l == -1 }, "none (hidden)")
	showTile("")
	pageCap(func(l int) bool { return l >= 0 }, "a layer again")

	// Everyone's tile large (no view): the page sends all three layers.
	var full map[string]float64
	testutil.Eventually(t, 30*time.Second, func() string {
		if full = rates(2 * time.Second); full["f"] <= 0 || full["h"] <= 0 || full["q"] <= 0 {
			return fmt.Sprintf("the page sends %v kbit/s per layer, want all three", full)
		}
		return ""
	})

	tile(120) // a thumbnail: 120 device pixels high
	testutil.Eventually(t, 20*time.Second, func() string {
		if l, ok := forwarded(); !ok || l.Layer != 0 {
			return fmt.Sprintf("the endpoint with a small tile receives %+v, want the low layer (its view %v)", l,
				a.Signaling().Local().Agent().ViewOf(peer))
		}
		return ""
	})
	var thumb map[string]float64
	testutil.Eventually(t, 20*time.Second, func() string {
		if thumb = rates(2 * time.Second); thumb["f"] > 0 || thumb["h"] > 0 || thumb["q"] <= 0 {
			return fmt.Sprintf("nobody needs more than the low layer, and the page sends %v kbit/s per layer", thumb)
		}
		return ""
	})

	asked := time.Now()
	tile(1080)
	testutil.Eventually(t, 10*time.Second, func() string {
		if r := rates(time.Second); r["f"] <= 0 {
			return fmt.Sprintf("a large tile asks for the top layer, and the page sends %v kbit/s per layer", r)
		}
		return ""
	})
	resumed := time.Since(asked)
	testutil.Eventually(t, 45*time.Second, func() string {
		if l, ok := forwarded(); !ok || l.Layer != 2 {
			return fmt.Sprintf("the endpoint with a large tile receives %+v, want the top layer", l)
		}
		return ""
	})
	t.Logf("page upstream: %.0f kbit/s with all layers %v; %.0f with only a thumbnail watching %v; the top layer sent again %v after a large tile, forwarded after %v",
		total(full), full, total(thumb), thumb, resumed.Round(100*time.Millisecond), time.Since(asked).Round(100*time.Millisecond))

	tile(0)
	audio := c.Stream(chair.Streams[protocol.SourceCamera], "audio")
	testutil.Eventually(t, 10*time.Second, func() string {
		v, au := video(c, chair).Packets.Load(), audio.Packets.Load()
		time.Sleep(time.Second)
		if dv, da := video(c, chair).Packets.Load()-v, audio.Packets.Load()-au; dv > 0 || da < 25 {
			return fmt.Sprintf("a hidden tile received %d video and %d audio packets in 1 s, want no video and the audio", dv, da)
		}
		return ""
	})
	// Nobody watches the camera now: after the hysteresis the page sends none of it.
	testutil.Eventually(t, 15*time.Second, func() string {
		if r := rates(2 * time.Second); total(r) > 0 {
			return fmt.Sprintf("nobody watches the camera, and the page sends %v kbit/s per layer", r)
		}
		return ""
	})
}

// video is what c receives of p's camera.
func video(c *client.Client, p protocol.Participant) *client.Stream {
	return c.Stream(p.Streams[protocol.SourceCamera], "video")
}
