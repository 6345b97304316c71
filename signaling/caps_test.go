package signaling_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/sfu"
)

// TestRemoteCandidatesCapped (issue 12, finding 4: pending negotiation state per session):
// an endpoint could add ICE candidates without end, held while no description was applied
// and each a target of the bridge's connectivity checks (STUN sent to any address it
// names). A publishing endpoint that sends 80 more is refused past
// sfu.MaxRemoteCandidates (64) per connection, and its media goes on.
func TestRemoteCandidatesCapped(t *testing.T) {
	ts := startServer(t, nil)
	pub := ts.publisher(t, "m1", "a", "A")
	rx := ts.join(t, "m1", "b", "B")
	eventually(t, 20*time.Second, func() string { return receivesFrom(rx, pub, 20) })
	// A candidate is answered only when it is refused: each request waits 3 s at most,
	// one sent every 25 ms (under the socket's message rate).
	const sent = 80
	mid := "0"
	errs := make(chan error, sent)
	for i := range sent {
		time.Sleep(25 * time.Millisecond)
		c := protocol.Candidate{Target: protocol.TargetPublisher, Candidate: protocol.ICECandidate{
			Candidate: fmt.Sprintf("candidate:%d 1 udp 2130706431 192.0.2.%d 9 typ host", 100+i, 1+i), SDPMid: &mid}}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_, err := pub.Request(ctx, protocol.KindCandidate, c)
			errs <- err
		}()
	}
	refused := 0
	for range sent {
		err := <-errs
		switch {
		case err == nil || errors.Is(err, context.DeadlineExceeded):
		case strings.Contains(err.Error(), protocol.CodeBadMessage):
			refused++
		default:
			t.Fatalf("a candidate: %v, want none or %s", err, protocol.CodeBadMessage)
		}
	}
	// The cap is 64 (sfu.MaxRemoteCandidates): at least the last 16 are refused.
	if refused < sent-64 || refused == sent {
		t.Fatalf("%d of %d candidates refused, want those past %d per connection", refused, sent, sfu.MaxRemoteCandidates)
	}
	keepsReceiving(t, rx, pub, "audio", 20, 10*time.Second)
}

// TestTracksPerPeerCapped (issue 12, finding 4): a real pion peer that offers more
// m-sections than protocol.MaxOfferMedia (each a track it would publish) is refused with
// bad_message before any bridge sees the offer; the session stays and publishes normally.
func TestTracksPerPeerCapped(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.join(t, "m1", "a", "A")
	kinds := make([]webrtc.RTPCodecType, protocol.MaxOfferMedia+1)
	for i := range kinds {
		kinds[i] = webrtc.RTPCodecTypeAudio
	}
	_, offer := sendOffer(t, kinds...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Request(ctx, protocol.KindOffer, protocol.Offer{SDP: offer.SDP})
	if err == nil || !strings.Contains(err.Error(), protocol.CodeBadMessage) {
		t.Fatalf("an offer of %d tracks: %v, want %s", protocol.MaxOfferMedia+1, err, protocol.CodeBadMessage)
	}
	if err := c.Publish(ctx); err != nil {
		t.Fatalf("publishing after the refused offer: %v", err)
	}
	rx := ts.join(t, "m1", "b", "B")
	eventually(t, 20*time.Second, func() string { return receivesFrom(rx, c, 10) })
}
