package videowatch

import "encoding/binary"

// vp8Desc is what a receiver reads from one VP8 RTP payload (RFC 7741 §4.2, and RFC 6386
// §9.1 for a keyframe's size).
type vp8Desc struct {
	start     bool // S=1 and partition 0: the packet starts a frame
	hasPID    bool
	pid       uint16 // picture id (7 or 15 bits)
	hasTL0    bool
	tl0       uint8 // TL0PICIDX
	hasTID    bool
	tid       uint8
	key       bool // the frame this packet starts is a keyframe (start packets only)
	width     int  // a keyframe's size (start packets of keyframes only)
	height    int
	malformed bool
}

// parseVP8 reads the payload descriptor and, for a frame's first packet, the payload
// header. It never allocates.
func parseVP8(p []byte) vp8Desc {
	var d vp8Desc
	if len(p) < 1 {
		d.malformed = true
		return d
	}
	d.start = p[0]&0x10 != 0 && p[0]&0x07 == 0
	i := 1
	if p[0]&0x80 != 0 { // X
		if len(p) <= i {
			d.malformed = true
			return d
		}
		x := p[i]
		i++
		if x&0x80 != 0 { // I: picture id
			if len(p) <= i {
				d.malformed = true
				return d
			}
			d.hasPID = true
			if p[i]&0x80 != 0 { // M: 15 bits
				if len(p) <= i+1 {
					d.malformed = true
					return d
				}
				d.pid = binary.BigEndian.Uint16(p[i:]) & 0x7fff
				i += 2
			} else {
				d.pid = uint16(p[i] & 0x7f)
				i++
			}
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			if len(p) <= i {
				d.malformed = true
				return d
			}
			d.hasTL0, d.tl0 = true, p[i]
			i++
		}
		if x&0x30 != 0 { // T or K: TID, Y, KEYIDX
			if len(p) <= i {
				d.malformed = true
				return d
			}
			if x&0x20 != 0 {
				d.hasTID, d.tid = true, p[i]>>6
			}
			i++
		}
	}
	if !d.start || len(p) <= i {
		return d
	}
	d.key = p[i]&0x01 == 0 // P bit of the frame tag: 0 for a keyframe
	if d.key && len(p) >= i+10 && p[i+3] == 0x9d && p[i+4] == 0x01 && p[i+5] == 0x2a {
		d.width = int(binary.LittleEndian.Uint16(p[i+6:]) & 0x3fff)
		d.height = int(binary.LittleEndian.Uint16(p[i+8:]) & 0x3fff)
	}
	return d
}
