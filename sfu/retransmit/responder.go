package retransmit

import (
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// Factory makes a Responder per peer connection. Register it last (outermost), so that
// retransmissions still pass through the interceptors below it (TWCC sequence numbers,
// sender reports) like any other packet.
type Factory struct {
	// Size is the number of packets kept per stream (default 1024: about a second of
	// 720p video, enough for a NACK round trip on a lossy commune link).
	Size int
}

// NewInterceptor implements interceptor.Factory.
func (f *Factory) NewInterceptor(string) (interceptor.Interceptor, error) {
	size := f.Size
	if size <= 0 {
		size = 1024
	}
	return &Responder{size: size, streams: map[uint32]*stream{}}, nil
}

// Responder caches what each NACK-capable local stream sends and answers NACKs from the
// cache.
type Responder struct {
	interceptor.NoOp
	size int

	mu      sync.RWMutex // guards streams (bind/unbind vs. NACK lookups)
	streams map[uint32]*stream

	resent, missed atomic.Uint64
}

// stream is one sending stream. mu serialises its writes — the sender's packets and
// retransmissions — so the cache, the scratch buffers and everything below see one
// packet at a time.
type stream struct {
	mu      sync.Mutex
	cache   *cache
	writer  interceptor.RTPWriter
	rtxSSRC uint32
	rtxPT   uint8
	rtxSeq  uint16
	hdr     rtp.Header      // scratch for a retransmission's header
	rtxBuf  [maxPacket]byte // scratch for an RTX payload (OSN + original payload)
}

func supportsNACK(info *interceptor.StreamInfo) bool {
	for _, fb := range info.RTCPFeedback {
		if fb.Type == "nack" && fb.Parameter == "" {
			return true
		}
	}
	return false
}

// BindLocalStream implements interceptor.Interceptor.
func (r *Responder) BindLocalStream(info *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	if !supportsNACK(info) {
		return writer
	}
	s := &stream{cache: newCache(r.size), writer: writer}
	if info.SSRCRetransmission != 0 && info.PayloadTypeRetransmission != 0 {
		s.rtxSSRC, s.rtxPT = info.SSRCRetransmission, info.PayloadTypeRetransmission
	}
	r.mu.Lock()
	r.streams[info.SSRC] = s
	r.mu.Unlock()
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.cache.store(h, payload)
		return s.writer.Write(h, payload, a)
	})
}

// UnbindLocalStream implements interceptor.Interceptor.
func (r *Responder) UnbindLocalStream(info *interceptor.StreamInfo) {
	r.mu.Lock()
	delete(r.streams, info.SSRC)
	r.mu.Unlock()
}

// BindRTCPReader implements interceptor.Interceptor: it watches incoming RTCP for NACKs.
func (r *Responder) BindRTCPReader(reader interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := reader.Read(b, a)
		if err != nil {
			return n, a, err
		}
		if a == nil {
			a = interceptor.Attributes{}
		}
		pkts, err := a.GetRTCPPackets(b[:n])
		if err != nil {
			return n, a, nil // not ours to judge; the next reader reports it
		}
		for _, p := range pkts {
			if nack, ok := p.(*rtcp.TransportLayerNack); ok {
				r.answer(nack)
			}
		}
		return n, a, nil
	})
}

func (r *Responder) answer(nack *rtcp.TransportLayerNack) {
	r.mu.RLock()
	s := r.streams[nack.MediaSSRC]
	r.mu.RUnlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, pair := range nack.Nacks {
		pair.Range(func(seq uint16) bool {
			if s.resend(seq) {
				r.resent.Add(1)
			} else {
				r.missed.Add(1)
			}
			return true
		})
	}
}

// resend sends packet seq again. Caller holds s.mu.
func (s *stream) resend(seq uint16) bool {
	pkt := s.cache.get(seq)
	if pkt == nil {
		return false
	}
	hn, err := s.hdr.Unmarshal(pkt)
	if err != nil {
		return false
	}
	payload := pkt[hn:]
	if s.rtxSSRC != 0 {
		// RFC 4588: the original sequence number, then the original payload, on the
		// retransmission stream with its own sequence numbers.
		binary.BigEndian.PutUint16(s.rtxBuf[:2], seq)
		n := 2 + copy(s.rtxBuf[2:], payload)
		payload = s.rtxBuf[:n]
		s.hdr.SSRC, s.hdr.PayloadType, s.hdr.SequenceNumber = s.rtxSSRC, s.rtxPT, s.rtxSeq
		s.rtxSeq++
	}
	s.hdr.Extension, s.hdr.Extensions = false, s.hdr.Extensions[:0] // the interceptors below add theirs again
	_, err = s.writer.Write(&s.hdr, payload, nil)
	return err == nil
}

// Counts returns how many NACKed packets were sent again and how many were no longer
// cached.
func (r *Responder) Counts() (resent, missed uint64) { return r.resent.Load(), r.missed.Load() }
