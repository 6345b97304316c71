package recorder

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/testmedia"
	"github.com/cau-project/cau/sfu"
)

func testLogger() *slog.Logger {
	level := slog.LevelError
	if os.Getenv("CAU_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// newTestBridge starts a real bridge on loopback.
func newTestBridge(t testing.TB) *sfu.Bridge {
	t.Helper()
	b, err := sfu.New(sfu.Config{ICEUDPPort: 0, ICETCPPort: -1, IncludeLoopback: true, Logger: testLogger()})
	if err != nil {
		t.Fatalf("new bridge: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// connected is a publisher joined to the bridge, with its two up tracks.
type connected struct {
	pub          *testmedia.Publisher
	peer         *sfu.Peer
	video, audio *sfu.UpTrack
	ups          chan *sfu.UpTrack
}

// connect joins a publisher to the bridge (offer/answer by direct calls).
func connect(t testing.TB, b *sfu.Bridge, pub *testmedia.Publisher, name string) *connected {
	t.Helper()
	ups := make(chan *sfu.UpTrack, 4)
	peer, err := b.NewPeer(sfu.PeerParams{ID: name, Logger: testLogger(), OnTrack: func(u *sfu.UpTrack) { ups <- u }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = peer.Close() })
	offer, err := pub.Offer()
	if err != nil {
		t.Fatal(err)
	}
	answer, err := peer.HandleOffer(offer)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Answer(answer); err != nil {
		t.Fatal(err)
	}
	return &connected{pub: pub, peer: peer, ups: ups}
}

// waitTracks waits for the publisher's tracks to reach the bridge (pion reports a track
// at its first packet, so the publisher must be sending).
func (c *connected) waitTracks(t testing.TB) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for c.video == nil || c.audio == nil {
		select {
		case u := <-c.ups:
			if u.Kind().String() == "video" {
				c.video = u
			} else {
				c.audio = u
			}
		case <-deadline:
			t.Fatalf("%s: tracks did not reach the bridge", c.peer.ID())
		}
	}
}
