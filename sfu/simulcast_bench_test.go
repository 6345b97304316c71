package sfu

import (
	"fmt"
	"testing"

	"github.com/pion/rtp"
)

// benchSimulcast is benchUpTrack for the top layer of a simulcast source: n subscribers
// forwarded that layer, each through its layer rewriter.
func benchSimulcast(n int) (*UpTrack, []byte) {
	up, raw := benchUpTrack(0)
	up.codec.ClockRate = 90000
	g := &simulcast{primary: up}
	up.sim, up.layer, up.rid = g, 2, "f"
	g.layers[2].Store(up)
	downs := make([]*DownTrack, 0, n)
	for i := 0; i < n; i++ {
		sub := &Peer{}
		sub.subConnected.Store(true)
		d := newDownTrack(up, sub, "v", "s")
		d.binding.Store(&binding{ssrc: uint32(1000 + i), pt: 96, writer: &discardWriter{}})
		d.sim.target.Store(2)
		downs = append(downs, d)
	}
	up.downs.Store(&downs)
	return up, raw
}

// BenchmarkForwardSimulcast is BenchmarkForward for subscribers of a simulcast layer.
func BenchmarkForwardSimulcast(b *testing.B) {
	for _, n := range []int{1, 10, 100, 300} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			up, raw := benchSimulcast(n) // the first keyframe starts every subscriber on the layer
			benchForwarding(b, up, raw, n)
		})
	}
}

// TestForwardSimulcastAllocatesNothing: forwarding a simulcast layer (the rewriter, its
// lock) allocates nothing per packet either.
func TestForwardSimulcastAllocatesNothing(t *testing.T) {
	for _, n := range []int{50, 3 * parallelMin} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			up, raw := benchSimulcast(n)
			defer func() { up.fan.stop() }()
			var hdr rtp.Header
			var pending pendingCounts
			up.forward(raw, &hdr, &pending)
			for _, d := range *up.downs.Load() {
				if cur, _ := d.Layer(); cur != 2 {
					t.Fatalf("subscriber on layer %d after the keyframe, want 2", cur)
				}
			}
			forwardAllocatesNothing(t, up, raw, &hdr, &pending)
		})
	}
}
