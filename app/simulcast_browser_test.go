package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
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
	testutil.Eventually(t, 30*time.Second, func() string {
		for _, p := range c.Participants() {
			if st := c.Stream(p.Streams[protocol.SourceCamera], "video"); st != nil && st.Packets.Load() > 50 {
				video = st
				return ""
			}
		}
		return "the pion endpoint has no camera from the page yet"
	})
	if video.FirstKeyframe.Load() != 1 {
		t.Errorf("the first camera packet from the page was not a keyframe's")
	}
	t.Logf("page sends layers %s; the endpoint got %d packets of one stream", rids, video.Packets.Load())
}
