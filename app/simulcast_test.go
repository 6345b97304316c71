package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/protocol"
)

// TestClientPublishesSimulcast: the Go client publishes its camera as three layers (q, h,
// f) through signaling; the bridge takes them as one camera, so the other site sees one
// video stream that starts on a keyframe and then plays without gaps, whatever layer the
// bridge forwards it.
func TestClientPublishesSimulcast(t *testing.T) {
	ctx := context.Background()
	a, _, _ := startHop(t, "")
	chair, commune := join(t, a, auth.Claims{Site: "tw"}), join(t, a, auth.Claims{Site: "xa"})
	synth, err := chair.PublishWith(ctx, client.PublishOptions{Simulcast: true, FPS: 15, PacketsPerFrame: 8, PayloadBytes: 800})
	if err != nil {
		t.Fatal(err)
	}
	var video *client.Stream
	testutil.Eventually(t, 20*time.Second, func() string {
		for _, p := range commune.Participants() {
			if s := commune.Stream(p.Streams[protocol.SourceCamera], "video"); s != nil && s.Packets.Load() > 100 {
				video = s
				return ""
			}
		}
		return fmt.Sprintf("the commune has no video from the chair yet (chair sent %+v)", synth.Sent())
	})
	if video.FirstKeyframe.Load() != 1 {
		t.Errorf("the first video packet the commune got was not a keyframe's")
	}
	if st := video.Stats(); st.Lost > st.Received/50 {
		t.Errorf("commune lost %d of %d video packets", st.Lost, st.Received)
	}
}
