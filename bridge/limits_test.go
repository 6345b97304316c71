package bridge

import (
	"errors"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/internal/testmedia"
	"github.com/cau-project/cau/internal/testutil"
)

// TestAgentRefusesPeersOverCap: an agent holds at most its cap of endpoint peers; the
// next is refused with ErrBridgeFull and counted, relay peers are not counted, and a
// closed peer makes room.
func TestAgentRefusesPeersOverCap(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewLimitMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	a := NewAgent(testmedia.NewBridge(t), Events{}, testmedia.Logger())
	a.SetMaxPeers(2, m)
	create := func(id ids.PeerID) error {
		err := a.CreatePeer(id)
		if err == nil {
			t.Cleanup(func() { _ = a.ClosePeer(id) })
		}
		return err
	}
	for _, p := range []ids.ParticipantID{"p1", "p2"} {
		if err := create(ids.ForEndpoint(p, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if !a.Full() {
		t.Fatal("an agent with 2 of 2 endpoints does not say it is full")
	}
	if err := create(ids.ForEndpoint("p3", 1)); !errors.Is(err, ErrBridgeFull) {
		t.Fatalf("a third endpoint over a cap of 2: %v, want ErrBridgeFull", err)
	}
	if err := create(ids.ForRelay("m1", "br-up")); err != nil {
		t.Fatalf("a relay peer on a full bridge: %v", err)
	}
	if got := testutil.Counter(t, reg, "cau_bridge_peers_refused_total"); got != 1 {
		t.Fatalf("cau_bridge_peers_refused_total = %v, want 1", got)
	}
	if err := a.ClosePeer(ids.ForEndpoint("p1", 1)); err != nil {
		t.Fatal(err)
	}
	if err := create(ids.ForEndpoint("p3", 1)); err != nil {
		t.Fatalf("an endpoint after one left: %v", err)
	}
}

// TestAgentForgetsStaleStreamKeys (issue 12, finding 4: the agent's keys were never
// pruned): a publisher that renegotiates again and again, each offer naming a track id
// never seen before, used to grow its peer's key map by one entry per offer for as long
// as it stayed. Each offer's keys now replace the earlier ones, and the tracks still
// publish under the server's keys.
func TestAgentForgetsStaleStreamKeys(t *testing.T) {
	clip := testmedia.MakeClip(t, 320, 240)
	a := NewAgent(testmedia.NewBridge(t), Events{}, testmedia.Logger())
	id := ids.ForEndpoint("p1", 1)
	if err := a.CreatePeer(id); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.ClosePeer(id) })
	pub := testmedia.NewPublisher(t, "p1", 0)
	const rounds = 30
	for i := range rounds {
		pub.Negotiate(t, func(offer string) (string, error) {
			return a.Offer(id, offer, map[string]ids.StreamKey{
				"camera":                  {Participant: "p1", Source: ids.SourceCamera},
				"mic":                     {Participant: "p1", Source: ids.SourceMicrophone},
				fmt.Sprintf("gone-%d", i): {Participant: "p1", Source: ids.SourceScreen},
			})
		})
		if i == 0 {
			pub.Start(func(int) *testmedia.Clip { return clip })
		}
	}
	waitStreams(t, a, "p1.camera", "p1.microphone")
	a.mu.Lock()
	n := len(a.peers[id].keys)
	a.mu.Unlock()
	if n != 3 {
		t.Fatalf("after %d offers the peer holds %d stream keys, want the last offer's 3", rounds, n)
	}
}
