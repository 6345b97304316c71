package sfu

import (
	"fmt"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// benchSlots is benchUpTrack with n subscribers' video slots pointed at the track in
// place of n DownTracks.
func benchSlots(n int) (*UpTrack, []byte, []*Slot) {
	up, raw := benchUpTrack(0)
	var slots []*Slot
	for i := range n {
		sub := &Peer{}
		sub.subConnected.Store(true)
		s := &Slot{id: "slot-v0", streamID: "slot-v0", kind: webrtc.RTPCodecTypeVideo, sub: sub}
		s.rw.resume, s.rw.clockRate = true, 90000
		s.binding.Store(&binding{ssrc: uint32(1000 + i), pt: 96, writer: &discardWriter{}})
		s.Point(up, "source", maxLayers-1)
		slots = append(slots, s)
	}
	return up, raw, slots
}

// BenchmarkForwardSlot is BenchmarkForward with the subscribers receiving the track in a
// slot (slot.go: the feeder, the slot's lock and rewriter). Target: 0 allocs/op.
func BenchmarkForwardSlot(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			up, raw, _ := benchSlots(n)
			defer func() { up.fan.stop() }()
			var hdr rtp.Header
			var pending pendingCounts
			up.forward(raw, &hdr, &pending) // start every slot
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				raw[2], raw[3] = byte(i>>8), byte(i)
				up.forward(raw, &hdr, &pending)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/subscriber")
		})
	}
}

// TestForwardSlotAllocatesNothing guards BenchmarkForwardSlot's 0 allocs/op in CI.
func TestForwardSlotAllocatesNothing(t *testing.T) {
	for _, n := range []int{50, 3 * parallelMin} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			up, raw, slots := benchSlots(n)
			defer func() { up.fan.stop() }()
			var hdr rtp.Header
			var pending pendingCounts
			up.forward(raw, &hdr, &pending)
			for _, s := range slots {
				if s.PacketsSent() != 1 {
					t.Fatalf("a slot sent %d packets of the first keyframe, want 1", s.PacketsSent())
				}
			}
			if got := up.Subscribers(); got != n {
				t.Fatalf("%d feeders on the track, want %d", got, n)
			}
			forwardAllocatesNothing(t, up, raw, &hdr, &pending)
		})
	}
}
