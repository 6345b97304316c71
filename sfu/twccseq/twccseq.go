// Package twccseq numbers every packet a peer connection sends with the transport-wide
// congestion control sequence number (draft-holmer-rmcat-transport-wide-cc-extensions),
// so the receiver's TWCC feedback can be matched to what was sent. It replaces pion's
// header-extension interceptor, which allocates a buffer per packet.
package twccseq

import (
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// Factory makes an Interceptor per peer connection.
type Factory struct{}

// NewInterceptor implements interceptor.Factory.
func (Factory) NewInterceptor(string) (interceptor.Interceptor, error) { return &Interceptor{}, nil }

// Interceptor adds the sequence number. One counter per peer connection: the numbers are
// transport-wide, shared by all its streams.
type Interceptor struct {
	interceptor.NoOp
	next atomic.Uint32
}

// BindLocalStream implements interceptor.Interceptor.
func (i *Interceptor) BindLocalStream(info *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	var id uint8
	for _, e := range info.RTPHeaderExtensions {
		if e.URI == sdp.TransportCCURI {
			id = uint8(e.ID)
		}
	}
	if id == 0 {
		return writer
	}
	// The extension's two bytes live in buf until the write below returns (the header
	// refers to them); mu keeps two writers of this stream from sharing them.
	var mu sync.Mutex
	var buf [2]byte
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		binary.BigEndian.PutUint16(buf[:], uint16(i.next.Add(1)-1))
		if err := h.SetExtension(id, buf[:]); err != nil {
			return 0, err
		}
		return writer.Write(h, payload, a)
	})
}
