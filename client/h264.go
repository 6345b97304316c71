package client

// H.264 NAL unit types (RFC 6184) that a receiver looks for at a stream's start.
const (
	NALIDR = 5 // an IDR slice: a keyframe
	NALSPS = 7
	NALPPS = 8

	nalSTAPA = 24
	nalFUA   = 28
)

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
