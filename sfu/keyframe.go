package sfu

import "strings"

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
		return vp8KeyframeStart(payload)
	case codecH264:
		return h264KeyframeStart(payload)
	}
	return false
}

// vp8KeyframeStart parses the VP8 payload descriptor (RFC 7741 §4.2) and the first byte
// of the VP8 payload header: a keyframe starts in partition 0 with S=1 and P=0.
func vp8KeyframeStart(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	start := p[0]&0x10 != 0
	partition := p[0] & 0x07
	if !start || partition != 0 {
		return false
	}
	i := 1
	if p[0]&0x80 != 0 { // X: extension byte present
		if len(p) <= i {
			return false
		}
		ext := p[i]
		i++
		if ext&0x80 != 0 { // I: picture id
			if len(p) <= i {
				return false
			}
			if p[i]&0x80 != 0 { // M: 15-bit picture id
				i += 2
			} else {
				i++
			}
		}
		if ext&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if ext&0x30 != 0 { // T or K: TID/Y/KEYIDX byte
			i++
		}
	}
	if len(p) <= i {
		return false
	}
	return p[i]&0x01 == 0 // P bit: 0 means keyframe
}

// H.264 NAL unit types (RFC 6184).
const (
	naluIDR  = 5
	naluSPS  = 7
	naluSTAP = 24
	naluFUA  = 28
)

// h264KeyframeStart reports whether the packet starts an IDR picture or carries the SPS
// that precedes one (browsers send SPS+PPS+IDR, often aggregated in a STAP-A).
func h264KeyframeStart(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch t := p[0] & 0x1f; t {
	case naluIDR, naluSPS:
		return true
	case naluSTAP:
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			i += 2
			if i >= len(p) {
				return false
			}
			if nt := p[i] & 0x1f; nt == naluIDR || nt == naluSPS {
				return true
			}
			i += size
		}
	case naluFUA:
		if len(p) < 2 {
			return false
		}
		startBit := p[1]&0x80 != 0
		nt := p[1] & 0x1f
		return startBit && (nt == naluIDR || nt == naluSPS)
	}
	return false
}
