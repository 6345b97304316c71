package sfu

import (
	"fmt"
	"testing"

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
		// The subscriber negotiated the track's codec (benchUpTrack's has no name) as 96.
		s.binding.Store(&binding{ssrc: uint32(1000 + i), pt: 96, writer: &discardWriter{},
			codecs: []webrtc.RTPCodecParameters{{PayloadType: 96}}})
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
			benchForwarding(b, up, raw, n)
		})
	}
}

// TestForwardSlotAllocatesNothing guards BenchmarkForwardSlot's 0 allocs/op in CI.
func TestForwardSlotAllocatesNothing(t *testing.T) {
	for _, n := range []int{50, 3 * parallelMin} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			up, raw, slots := benchSlots(n)
			testForwardStarted(t, up, raw)
			for _, s := range slots {
				if s.PacketsSent() < 1000 {
					t.Fatalf("a slot sent %d packets, want every one forwarded", s.PacketsSent())
				}
			}
		})
	}
}
