//go:build cgo

package sipgw

// Opus through libopus (Debian libopus-dev to build, libopus0 to run): the meeting
// speaks Opus, rooms G.711 or G.722. The encoder and decoder run mono at the room
// codec's rate (8 kHz for G.711, 16 kHz for G.722), so no resampling is needed here:
// libopus converts internally, and the RTP clock stays 48 kHz as RFC 7587 requires.

/*
#cgo pkg-config: opus
#include <opus.h>

static int cau_opus_set_bitrate(OpusEncoder *e, opus_int32 b) { return opus_encoder_ctl(e, OPUS_SET_BITRATE(b)); }
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// opusAvailable reports whether this build can transcode audio.
const opusAvailable = true

// opusEncoder encodes mono PCM (8 or 16 kHz) to Opus. One goroutine at a time.
type opusEncoder struct{ e *C.OpusEncoder }

// opusDecoder decodes Opus to mono PCM (8 or 16 kHz). One goroutine at a time.
type opusDecoder struct{ d *C.OpusDecoder }

func newOpusEncoder(rate int) (*opusEncoder, error) {
	var errc C.int
	e := C.opus_encoder_create(C.opus_int32(rate), 1, C.OPUS_APPLICATION_VOIP, &errc)
	if errc != C.OPUS_OK || e == nil {
		return nil, fmt.Errorf("opus encoder: %s", C.GoString(C.opus_strerror(errc)))
	}
	// Narrowband speech from G.711 needs little: 24 kb/s is transparent for it; G.722's
	// wideband 32 kb/s.
	C.cau_opus_set_bitrate(e, C.opus_int32(24000+8000*(rate/16000)))
	return &opusEncoder{e: e}, nil
}

// encode writes one frame of pcm (2.5 to 60 ms at the encoder's rate) as Opus into out.
func (o *opusEncoder) encode(pcm []int16, out []byte) (int, error) {
	if len(pcm) == 0 || len(out) == 0 {
		return 0, fmt.Errorf("opus encode: empty buffer")
	}
	n := C.opus_encode(o.e, (*C.opus_int16)(unsafe.Pointer(&pcm[0])), C.int(len(pcm)),
		(*C.uchar)(unsafe.Pointer(&out[0])), C.opus_int32(len(out)))
	if n < 0 {
		return 0, fmt.Errorf("opus encode: %s", C.GoString(C.opus_strerror(n)))
	}
	return int(n), nil
}

func (o *opusEncoder) close() { C.opus_encoder_destroy(o.e) }

func newOpusDecoder(rate int) (*opusDecoder, error) {
	var errc C.int
	d := C.opus_decoder_create(C.opus_int32(rate), 1, &errc)
	if errc != C.OPUS_OK || d == nil {
		return nil, fmt.Errorf("opus decoder: %s", C.GoString(C.opus_strerror(errc)))
	}
	return &opusDecoder{d: d}, nil
}

// decode decodes one packet into pcm and returns the samples written.
func (o *opusDecoder) decode(pkt []byte, pcm []int16) (int, error) {
	if len(pkt) == 0 || len(pcm) == 0 {
		return 0, fmt.Errorf("opus decode: empty buffer")
	}
	n := C.opus_decode(o.d, (*C.uchar)(unsafe.Pointer(&pkt[0])), C.opus_int32(len(pkt)),
		(*C.opus_int16)(unsafe.Pointer(&pcm[0])), C.int(len(pcm)), 0)
	if n < 0 {
		return 0, fmt.Errorf("opus decode: %s", C.GoString(C.opus_strerror(n)))
	}
	return int(n), nil
}

func (o *opusDecoder) close() { C.opus_decoder_destroy(o.d) }
