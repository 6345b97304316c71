package whip_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/protocol"
)

// TestWHEPViewersShareAWatchLink (issue 12, finding 4): the players of one watch link
// (a wall screen, an overflow room) share its join token. They are counted apart from the
// token's sessions that publish, under the viewers' cap: with 2 sessions and 4 viewers a
// token, four pion WHEP players join on one token (the last one receives the meeting), a
// fifth is refused with 503, and the token still opens its two ordinary sessions.
func TestWHEPViewersShareAWatchLink(t *testing.T) {
	a := startWith(t, func(c *app.Config) { c.MaxSessionsPerToken, c.MaxViewersPerToken = 2, 4 })
	publisher(t, a, "xem") // the meeting's camera and microphone, for the last viewer

	link := token(t, a, "xem", "hue", "Màn hình Huế")
	var last *whepViewer
	for i := range 4 {
		v, offer := newWHEPViewer(t)
		resp, answer := do(t, http.MethodPost, a.URL()+"/whep/xem/ha-noi", link, "application/sdp", offer)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("viewer %d of one watch link: %d %s, want 201", i+1, resp.StatusCode, answer)
		}
		if err := v.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
			t.Fatal(err)
		}
		last = v
	}
	testutil.Eventually(t, 30*time.Second, func() string {
		if last.video.Load() < 20 || last.audio.Load() < 20 {
			return fmt.Sprintf("the fourth viewer has %d video and %d audio packets", last.video.Load(), last.audio.Load())
		}
		return ""
	})
	_, offer := newWHEPViewer(t)
	if resp, body := do(t, http.MethodPost, a.URL()+"/whep/xem/ha-noi", link, "application/sdp", offer); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a fifth viewer over the cap of 4: %d %s, want 503", resp.StatusCode, body)
	}
	for i := range 3 {
		c, err := client.Dial(t.Context(), wsURL(a), link, client.Options{Loopback: true})
		if i < 2 {
			if err != nil {
				t.Fatalf("session %d of the token beside its viewers: %v", i+1, err)
			}
			t.Cleanup(c.Close)
			continue
		}
		if err == nil || !strings.Contains(err.Error(), protocol.CodeCapacity) {
			t.Fatalf("a third session over the cap of 2: %v, want %s", err, protocol.CodeCapacity)
		}
	}
}
