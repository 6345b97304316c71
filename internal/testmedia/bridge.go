package testmedia

import (
	"log/slog"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/sfu"
)

// Logger is the tests' logger: errors only, everything with CAU_TEST_DEBUG set.
func Logger() *slog.Logger { return testutil.Logger() }

// NewBridge starts a real bridge on loopback, closed when the test ends.
func NewBridge(t testing.TB) *sfu.Bridge {
	t.Helper()
	b, err := sfu.New(sfu.Config{ICEUDPPort: 0, ICETCPPort: -1, IncludeLoopback: true, Logger: Logger()})
	if err != nil {
		t.Fatalf("new bridge: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// Connected is a publisher joined to a bridge, with its two up tracks once they came.
type Connected struct {
	Pub          *Publisher
	Peer         *sfu.Peer
	Video, Audio *sfu.UpTrack
	ups          chan *sfu.UpTrack
}

// Connect joins a publisher to the bridge (offer/answer by direct calls).
func Connect(t testing.TB, b *sfu.Bridge, pub *Publisher, name string) *Connected {
	t.Helper()
	ups := make(chan *sfu.UpTrack, 4)
	peer, err := b.NewPeer(sfu.PeerParams{ID: name, Logger: Logger(), OnTrack: func(u *sfu.UpTrack) { ups <- u }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = peer.Close() })
	pub.Negotiate(t, peer.HandleOffer)
	return &Connected{Pub: pub, Peer: peer, ups: ups}
}

// WaitTracks waits for the publisher's tracks to reach the bridge (pion reports a track
// at its first packet, so the publisher must be sending).
func (c *Connected) WaitTracks(t testing.TB) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for c.Video == nil || c.Audio == nil {
		select {
		case u := <-c.ups:
			if u.Kind().String() == "video" {
				c.Video = u
			} else {
				c.Audio = u
			}
		case <-deadline:
			t.Fatalf("%s: tracks did not reach the bridge", c.Peer.ID())
		}
	}
}
