//go:build !cgo

package sipgw

import "errors"

// g722Available reports whether this build speaks G.722: a build without cgo has no
// libspandsp, so offers are answered in G.711 (and carry no audio either: no libopus).
const g722Available = false

var errNoG722 = errors.New("g722: this build has no libspandsp (built without cgo)")

type g722Encoder struct{}

type g722Decoder struct{}

func newG722Encoder() (*g722Encoder, error) { return nil, errNoG722 }

func (*g722Encoder) encode([]int16, []byte) int { return 0 }

func (*g722Encoder) close() {}

func newG722Decoder() (*g722Decoder, error) { return nil, errNoG722 }

func (*g722Decoder) decode([]byte, []int16) int { return 0 }

func (*g722Decoder) close() {}
