package signaling_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cau-project/cau/internal/peerconn"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/signaling"
)

// TestAnswersCarryCandidates (issue 12, test strength: a guard on join time): the
// bridge's answer to a publisher's offer carries its ICE candidates, so an endpoint can
// start connectivity checks as soon as it has the answer, without waiting for trickled
// candidates; a bridge that answered before gathering would add a round trip (or a
// gathering timeout) to every join.
func TestAnswersCarryCandidates(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.join(t, "m1", "xa", "Xã")
	pc, offer := sendOffer(t, webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env, err := c.Request(ctx, protocol.KindOffer, protocol.Offer{SDP: offer.SDP})
	if err != nil {
		t.Fatal(err)
	}
	var ans protocol.Answer
	if err := protocol.DecodeData(env, &ans); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ans.SDP, "a=candidate:") || !strings.Contains(ans.SDP, "typ host") {
		t.Fatalf("the bridge's answer carries no host candidate:\n%s", ans.SDP)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.SDP}); err != nil {
		t.Fatalf("the answer does not apply: %v", err)
	}
}

// sendOffer makes a real pion peer (closed with the test) sending one track of each kind
// given, and its offer (not yet set as its local description).
func sendOffer(t *testing.T, kinds ...webrtc.RTPCodecType) (*webrtc.PeerConnection, webrtc.SessionDescription) {
	t.Helper()
	pc, err := peerconn.New(loopbackAPI(t), webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	for _, kind := range kinds {
		if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pc, offer
}

// TestJoinPhasesAreTimed: every successful join observes each of its server-side phases
// once in cau_signaling_join_phase_seconds, and the phases inside the handler add up to
// no more than its total (the figures a join storm is read with: the server's part of
// token → joined, apart from the tester's).
func TestJoinPhasesAreTimed(t *testing.T) {
	var reg *prometheus.Registry
	ts := startServer(t, func(c *signaling.Config) { reg = withMetrics(t, c) })
	ts.join(t, "m1", "xa", "Xã")
	ts.join(t, "m1", "xb", "Xã B")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "cau_signaling_join_phase_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			phase := m.GetLabel()[0].GetValue()
			if n := m.GetHistogram().GetSampleCount(); n != 2 {
				t.Errorf("phase %s observed %d times for 2 joins", phase, n)
			}
			sums[phase] = m.GetHistogram().GetSampleSum()
		}
	}
	if len(sums) != 7 {
		t.Fatalf("phases observed: %v, want socket, verify, meeting, place, lock, add, total", sums)
	}
	inner := sums["verify"] + sums["meeting"] + sums["place"] + sums["lock"] + sums["add"]
	if inner <= 0 || inner > sums["total"]+1e-6 {
		t.Fatalf("the phases inside the join add up to %v s, the total is %v s", inner, sums["total"])
	}
}
