// Package rtpvideo reads the first bytes of RTP video payloads: where a VP8 keyframe
// starts, and which H.264 NAL units a packet starts. The bridge asks for every packet it
// forwards, the client and the gateways for every packet they receive, so it reads a few
// bytes, never allocates, and takes any input without panicking.
package rtpvideo

// H.264 NAL unit types (RFC 6184) that a receiver looks for at a stream's start.
const (
	NALIDR = 5 // an IDR slice: a keyframe
	NALSPS = 7
	NALPPS = 8

	nalSTAPA = 24
	nalFUA   = 28
)

// VP8KeyframeStart parses the VP8 payload descriptor (RFC 7741 §4.2) and the first byte
// of the VP8 payload header: a keyframe starts in partition 0 with S=1 and P=0.
func VP8KeyframeStart(p []byte) bool {
	if len(p) < 1 || p[0]&0x10 == 0 || p[0]&0x07 != 0 { // S bit, partition index
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
	return len(p) > i && p[i]&0x01 == 0 // P bit: 0 means keyframe
}

// H264NALTypes returns the NAL unit types that start in an H.264 RTP payload (single
// NAL unit, STAP-A aggregate or the first fragment of an FU-A) as a bit set: bit n is
// set for type n.
func H264NALTypes(p []byte) uint32 {
	if len(p) < 1 {
		return 0
	}
	switch t := p[0] & 0x1f; t {
	case nalSTAPA:
		var set uint32
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			i += 2
			set |= 1 << (p[i] & 0x1f)
			i += size
		}
		return set
	case nalFUA:
		if len(p) < 2 || p[1]&0x80 == 0 {
			return 0
		}
		return 1 << (p[1] & 0x1f)
	default:
		return 1 << t
	}
}

// H264KeyframeStart reports whether the packet starts an IDR picture or carries the SPS
// that precedes one (browsers send SPS+PPS+IDR, often aggregated in a STAP-A).
func H264KeyframeStart(p []byte) bool {
	return H264NALTypes(p)&(1<<NALIDR|1<<NALSPS) != 0
}
