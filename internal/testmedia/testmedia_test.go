package testmedia_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/testmedia"
	"github.com/cau-project/cau/internal/testutil"
)

// TestPublisherReachesABridge: a clip is one cycle of VP8 frames (a keyframe first) and
// 20 ms Opus packets; a publisher sends it in real time to a loopback bridge, whose up
// tracks carry the publisher's stream and codecs and count the packets that came.
func TestPublisherReachesABridge(t *testing.T) {
	clip := testmedia.MakeClip(t, 160, 120)
	frames, packets := int(testmedia.Cycle.Seconds()*testmedia.FPS), int(testmedia.Cycle/(20*time.Millisecond))
	if len(clip.Video) != frames || len(clip.Audio) != packets {
		t.Fatalf("clip: %d frames, %d audio packets; want %d and %d", len(clip.Video), len(clip.Audio), frames, packets)
	}
	if clip.Video[0][0]&1 != 0 { // VP8 payload header: P bit clear on a keyframe
		t.Errorf("the clip's first frame is not a keyframe")
	}
	b := testmedia.NewBridge(t)
	pub := testmedia.NewPublisher(t, "site-a", 0)
	c := testmedia.Connect(t, b, pub, "site-a")
	pub.Start(func(int) *testmedia.Clip { return clip })
	c.WaitTracks(t)
	if v, a := c.Video.Codec().MimeType, c.Audio.Codec().MimeType; v != "video/VP8" || a != "audio/opus" {
		t.Errorf("up tracks' codecs: %s and %s, want video/VP8 and audio/opus", v, a)
	}
	if c.Video.StreamID() != "site-a" {
		t.Errorf("video up track: stream %q, want site-a", c.Video.StreamID())
	}
	testutil.Eventually(t, 20*time.Second, func() string {
		v, a := c.Video.ReceiveStats(), c.Audio.ReceiveStats()
		if pub.Frames.Load() < testmedia.FPS || v.Packets < testmedia.FPS || a.Packets < 50 {
			return fmt.Sprintf("after a second: %d frames sent; the bridge received %d video and %d audio packets",
				pub.Frames.Load(), v.Packets, a.Packets)
		}
		return ""
	})
}

// TestAVOffsets pairs each flash with its nearest beep within half a cycle.
func TestAVOffsets(t *testing.T) {
	offs := testmedia.AVOffsets([]float64{1.0, 3.0, 5.0}, []float64{1.04, 2.98, 9.0})
	want := []time.Duration{40 * time.Millisecond, -20 * time.Millisecond}
	if len(offs) != len(want) {
		t.Fatalf("offsets %v, want %v (the flash at 5 s has no beep within a second)", offs, want)
	}
	for i := range want {
		if d := offs[i] - want[i]; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("offset %d = %v, want %v", i, offs[i], want[i])
		}
	}
	if m := testmedia.Median(offs); m != offs[0] {
		t.Errorf("median of %v = %v, want %v", offs, m, offs[0])
	}
	if m := testmedia.Median(nil); m != 0 {
		t.Errorf("median of none = %v, want 0", m)
	}
}
