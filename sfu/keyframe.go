package sfu

import (
	"strings"

	"github.com/cau-project/cau/internal/rtpvideo"
)

// codecKind tells the forwarder how to find the start of a keyframe in a payload.
type codecKind uint8

const (
	codecOther codecKind = iota // audio and codecs we do not gate on keyframes
	codecVP8
	codecH264
)

func codecKindOf(mime string) codecKind {
	switch strings.ToLower(mime) {
	case "video/vp8":
		return codecVP8
	case "video/h264":
		return codecH264
	}
	return codecOther
}

// isKeyframeStart reports whether payload is the first packet of a keyframe, the point
// from which a new subscriber can decode. It reads a few bytes and never allocates.
func isKeyframeStart(kind codecKind, payload []byte) bool {
	switch kind {
	case codecVP8:
		return rtpvideo.VP8KeyframeStart(payload)
	case codecH264:
		return rtpvideo.H264KeyframeStart(payload)
	}
	return false
}
