//go:build cgo

package sipgw

// G.722 (ITU-T G.722, 64 kbit/s sub-band ADPCM, 16 kHz audio) through libspandsp
// (Debian libspandsp-dev to build, libspandsp2 to run), the implementation Asterisk,
// FreeSWITCH and baresip use. An encoder or a decoder keeps the ADPCM state of one
// direction of one call.

/*
#cgo pkg-config: spandsp
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>
#include <spandsp/telephony.h>
#include <spandsp/g722.h>
*/
import "C"

import (
	"errors"
	"unsafe"
)

// g722Available reports whether this build speaks G.722.
const g722Available = true

// g722Encoder compresses 16 kHz PCM to G.722 (two samples a byte). One goroutine at a time.
type g722Encoder struct{ s *C.g722_encode_state_t }

// g722Decoder expands G.722 to 16 kHz PCM. One goroutine at a time.
type g722Decoder struct{ s *C.g722_decode_state_t }

func newG722Encoder() (*g722Encoder, error) {
	s := C.g722_encode_init(nil, 64000, 0)
	if s == nil {
		return nil, errors.New("g722 encoder: out of memory")
	}
	return &g722Encoder{s: s}, nil
}

// encode compresses pcm (an even number of samples) into out (at least len(pcm)/2
// bytes) and returns the bytes written.
func (e *g722Encoder) encode(pcm []int16, out []byte) int {
	if len(pcm) == 0 || len(out) < len(pcm)/2 {
		return 0
	}
	return int(C.g722_encode(e.s, (*C.uint8_t)(unsafe.Pointer(&out[0])), (*C.int16_t)(unsafe.Pointer(&pcm[0])), C.int(len(pcm))))
}

func (e *g722Encoder) close() { C.g722_encode_free(e.s) }

func newG722Decoder() (*g722Decoder, error) {
	s := C.g722_decode_init(nil, 64000, 0)
	if s == nil {
		return nil, errors.New("g722 decoder: out of memory")
	}
	return &g722Decoder{s: s}, nil
}

// decode expands payload into pcm (at least 2·len(payload) samples) and returns the
// samples written.
func (d *g722Decoder) decode(payload []byte, pcm []int16) int {
	if len(payload) == 0 || len(pcm) < 2*len(payload) {
		return 0
	}
	return int(C.g722_decode(d.s, (*C.int16_t)(unsafe.Pointer(&pcm[0])), (*C.uint8_t)(unsafe.Pointer(&payload[0])), C.int(len(payload))))
}

func (d *g722Decoder) close() { C.g722_decode_free(d.s) }
