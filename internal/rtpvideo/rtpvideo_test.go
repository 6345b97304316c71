package rtpvideo

import "testing"

// TestH264NALTypes checks the bit set each packetization gives; keyframe detection on
// both codecs is tested through the bridge (sfu TestKeyframeStart, FuzzKeyframe).
func TestH264NALTypes(t *testing.T) {
	cases := []struct {
		name string
		p    []byte
		want uint32
	}{
		{"single IDR", []byte{0x65, 0x88}, 1 << NALIDR},
		{"STAP-A SPS+PPS", []byte{0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68}, 1<<NALSPS | 1<<NALPPS},
		{"STAP-A truncated", []byte{0x78, 0x00}, 0},
		{"FU-A IDR start", []byte{0x7c, 0x85}, 1 << NALIDR},
		{"FU-A IDR middle", []byte{0x7c, 0x05}, 0},
		{"empty", nil, 0},
	}
	for _, c := range cases {
		if got := H264NALTypes(c.p); got != c.want {
			t.Errorf("%s: got %b, want %b", c.name, got, c.want)
		}
	}
	p := []byte{0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68}
	if n := testing.AllocsPerRun(100, func() { _ = H264KeyframeStart(p) || VP8KeyframeStart(p) }); n != 0 {
		t.Errorf("%v allocations per packet, want 0", n)
	}
}
