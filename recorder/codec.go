package recorder

import (
	"encoding/binary"
	"strings"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// codec is what the recorder knows of a track's codec.
type codec struct {
	mime       string
	matroskaID string
	webm       bool // allowed in a WebM file (else the file is Matroska)
	video      bool
}

var (
	codecOpus = codec{mime: "audio/opus", matroskaID: "A_OPUS", webm: true}
	codecVP8  = codec{mime: "video/vp8", matroskaID: "V_VP8", webm: true, video: true}
	codecH264 = codec{mime: "video/h264", matroskaID: "V_MPEG4/ISO/AVC", video: true}
)

// codecOf returns the codec for a MIME type, or false if the recorder cannot write it.
func codecOf(mime string) (codec, bool) {
	for _, c := range []codec{codecOpus, codecVP8, codecH264} {
		if strings.EqualFold(c.mime, mime) {
			return c, true
		}
	}
	return codec{}, false
}

// depacketizer returns a fresh depacketizer for the codec. H.264 comes out as AVC
// (length-prefixed NAL units), the form Matroska stores.
func (c codec) depacketizer() rtp.Depacketizer {
	switch c {
	case codecVP8:
		return &codecs.VP8Packet{}
	case codecH264:
		return &codecs.H264Packet{IsAVC: true}
	}
	return &codecs.OpusPacket{}
}

// keyframe reports whether frame (depacketized) is a keyframe.
func (c codec) keyframe(frame []byte) bool {
	switch c {
	case codecVP8:
		// RFC 6386 §9.1: bit 0 of the frame tag is 0 for a key frame.
		return len(frame) >= 10 && frame[0]&0x01 == 0
	case codecH264:
		found := false
		eachNALU(frame, func(n []byte) {
			if n[0]&0x1F == 5 {
				found = true
			}
		})
		return found
	}
	return true
}

// vp8Size reads the width and height of a VP8 keyframe (RFC 6386 §9.1).
func vp8Size(frame []byte) (w, h int, ok bool) {
	if len(frame) < 10 || frame[0]&0x01 != 0 || frame[3] != 0x9d || frame[4] != 0x01 || frame[5] != 0x2a {
		return 0, 0, false
	}
	w = int(binary.LittleEndian.Uint16(frame[6:]) & 0x3FFF)
	h = int(binary.LittleEndian.Uint16(frame[8:]) & 0x3FFF)
	return w, h, w > 0 && h > 0
}

// eachNALU calls fn for each NAL unit of an AVC (4-byte length-prefixed) frame.
func eachNALU(frame []byte, fn func([]byte)) {
	for len(frame) >= 4 {
		n := int(binary.BigEndian.Uint32(frame))
		frame = frame[4:]
		if n <= 0 || n > len(frame) {
			return
		}
		fn(frame[:n])
		frame = frame[n:]
	}
}

// avcConfig builds an AVCDecoderConfigurationRecord (ISO 14496-15 §5.2.4.1), Matroska's
// CodecPrivate for H.264, from the SPS and PPS found in a keyframe; nil if absent.
func avcConfig(frame []byte) []byte {
	var sps, pps []byte
	eachNALU(frame, func(n []byte) {
		switch n[0] & 0x1F {
		case 7:
			if sps == nil {
				sps = n
			}
		case 8:
			if pps == nil {
				pps = n
			}
		}
	})
	if len(sps) < 4 || pps == nil {
		return nil
	}
	b := []byte{1, sps[1], sps[2], sps[3], 0xFF, 0xE1}
	b = binary.BigEndian.AppendUint16(b, uint16(len(sps)))
	b = append(b, sps...)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(pps)))
	return append(b, pps...)
}
