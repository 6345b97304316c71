package sfu

import "testing"

func TestKeyframeStart(t *testing.T) {
	cases := []struct {
		name string
		kind codecKind
		p    []byte
		want bool
	}{
		{"vp8 keyframe, no extension", codecVP8, []byte{0x10, 0x00, 0x9d}, true},
		{"vp8 delta frame", codecVP8, []byte{0x10, 0x01}, false},
		{"vp8 continuation packet", codecVP8, []byte{0x00, 0x00}, false},
		{"vp8 other partition", codecVP8, []byte{0x11, 0x00}, false},
		{"vp8 keyframe with 15-bit picture id", codecVP8, []byte{0x90, 0x80, 0x81, 0x23, 0x00}, true},
		{"vp8 keyframe with 7-bit picture id, tl0, tid", codecVP8, []byte{0x90, 0xe0, 0x12, 0x05, 0x40, 0x00}, true},
		{"vp8 delta with extension", codecVP8, []byte{0x90, 0x80, 0x12, 0x01}, false},
		{"vp8 truncated extension", codecVP8, []byte{0x90}, false},
		{"vp8 truncated picture id", codecVP8, []byte{0x90, 0x80}, false},
		{"vp8 empty", codecVP8, nil, false},
		{"h264 IDR", codecH264, []byte{0x65, 0x88}, true},
		{"h264 SPS", codecH264, []byte{0x67, 0x42}, true},
		{"h264 non-IDR slice", codecH264, []byte{0x41, 0x9a}, false},
		{"h264 STAP-A with SPS", codecH264, []byte{0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68}, true},
		{"h264 STAP-A without key", codecH264, []byte{0x78, 0x00, 0x01, 0x06, 0x00, 0x01, 0x41}, false},
		{"h264 STAP-A truncated", codecH264, []byte{0x78, 0x00}, false},
		{"h264 FU-A IDR start", codecH264, []byte{0x7c, 0x85}, true},
		{"h264 FU-A IDR middle", codecH264, []byte{0x7c, 0x05}, false},
		{"h264 FU-A non-IDR start", codecH264, []byte{0x7c, 0x81}, false},
		{"opus never", codecOther, []byte{0x10, 0x00}, false},
	}
	for _, c := range cases {
		if got := isKeyframeStart(c.kind, c.p); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func FuzzKeyframe(f *testing.F) {
	f.Add(uint8(1), []byte{0x90, 0xe0, 0x12, 0x05, 0x40, 0x00})
	f.Add(uint8(2), []byte{0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68})
	f.Add(uint8(2), []byte{0x7c, 0x85})
	f.Fuzz(func(t *testing.T, kind uint8, p []byte) {
		_ = isKeyframeStart(codecKind(kind%3), p) // must not panic on any input
	})
}
