//go:build !cgo

package sipgw

import "errors"

// opusAvailable reports whether this build can transcode audio: a build without cgo
// (the static release binary) has no libopus, so calls carry video only.
const opusAvailable = false

var errNoOpus = errors.New("opus: this build has no libopus (built without cgo); SIP calls carry video only")

type opusEncoder struct{}

type opusDecoder struct{}

func newOpusEncoder(int) (*opusEncoder, error) { return nil, errNoOpus }

func (*opusEncoder) encode([]int16, []byte) (int, error) { return 0, errNoOpus }

func (*opusEncoder) close() {}

func newOpusDecoder(int) (*opusDecoder, error) { return nil, errNoOpus }

func (*opusDecoder) decode([]byte, []int16) (int, error) { return 0, errNoOpus }

func (*opusDecoder) close() {}
