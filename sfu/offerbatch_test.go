package sfu

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// A join storm adds tracks to a subscriber one after another, each a little later than
// the last (issue 11: one join every 20 ms at 50 joins/s, slower on a loaded machine).
// The subscriber connection must be offered them in one renegotiation once the changes
// pause, not one per change (at most one per batchMax), and every track must flow.
func TestSubscriberOfferBatchesTracksAddedInTurn(t *testing.T) {
	b := newTestBridge(t)
	r := &room{}
	const publishers = 3
	for i := range publishers {
		r.join(t, b, fmt.Sprintf("pub%d", i)).publish()
	}
	eventually(t, 15*time.Second, func() string {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.tracks) < 2*publishers {
			return fmt.Sprintf("%d of %d tracks published", len(r.tracks), 2*publishers)
		}
		return ""
	})
	r.mu.Lock()
	tracks := append([]*UpTrack(nil), r.tracks...)
	r.mu.Unlock()

	// subscribe adds the tracks to a new subscriber gap apart and returns how many
	// offers it got once every track flows.
	subscribe := func(name string, quiet, most, gap time.Duration) int64 {
		var offers atomic.Int64
		e := newTestEndpointWith(t, b, name, nil, endpointOpts{onOffer: func() { offers.Add(1) }})
		t.Cleanup(e.close)
		e.peer.mu.Lock()
		e.peer.batchQuiet, e.peer.batchMax = quiet, most
		e.peer.mu.Unlock()
		for i, up := range tracks {
			if i > 0 {
				time.Sleep(gap)
			}
			if _, err := e.peer.Subscribe(up, up.ID(), up.StreamID()); err != nil {
				t.Fatalf("subscribe: %v", err)
			}
		}
		for i := range publishers {
			for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
				e.waitPackets(t, 15*time.Second, fmt.Sprintf("stream-pub%d", i), kind, 5,
					fmt.Sprintf("%s: no %s from pub%d", name, kind, i))
			}
		}
		return offers.Load()
	}

	// Six tracks 20 ms apart (100 ms in all, five times the old fixed 20 ms window) in a
	// batch that waits for 1 s of quiet: one offer.
	if n := subscribe("sub-quiet", time.Second, 10*time.Second, 20*time.Millisecond); n != 1 {
		t.Errorf("tracks added 20 ms apart, 1 s quiet window: %d subscriber offers, want 1", n)
	}
	// Six tracks 300 ms apart (1.5 s in all) with a 400 ms quiet window bounded at
	// 800 ms: the bound sends an offer before the changes pause, and a later offer carries
	// the rest.
	if n := subscribe("sub-bounded", 400*time.Millisecond, 800*time.Millisecond, 300*time.Millisecond); n < 2 {
		t.Errorf("tracks added 300 ms apart over 1.5 s, batches of at most 800 ms: %d subscriber offers, want 2 or more", n)
	}
}
