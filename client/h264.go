package client

import "github.com/cau-project/cau/internal/rtpvideo"

// H.264 NAL unit types (RFC 6184) that a receiver looks for at a stream's start; bits of
// [Stream.NALTypes].
const (
	NALIDR = rtpvideo.NALIDR // an IDR slice: a keyframe
	NALSPS = rtpvideo.NALSPS
	NALPPS = rtpvideo.NALPPS
)

// H264NALTypes returns the NAL unit types that start in an H.264 RTP payload as a bit
// set: bit n is set for type n (see rtpvideo.H264NALTypes).
func H264NALTypes(p []byte) uint32 { return rtpvideo.H264NALTypes(p) }
