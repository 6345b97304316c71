package retransmit

import (
	"encoding/binary"
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// sink records what reaches the network side of the responder.
type sink struct {
	headers  []rtp.Header
	payloads [][]byte
}

func (s *sink) Write(h *rtp.Header, p []byte, _ interceptor.Attributes) (int, error) {
	s.headers = append(s.headers, *h)
	s.payloads = append(s.payloads, append([]byte(nil), p...))
	return len(p), nil
}

func bind(t *testing.T, rtx bool) (*Responder, interceptor.RTPWriter, *sink, func(*rtcp.TransportLayerNack)) {
	t.Helper()
	i, err := (&Factory{Size: 100}).NewInterceptor("")
	if err != nil {
		t.Fatal(err)
	}
	r := i.(*Responder)
	info := &interceptor.StreamInfo{SSRC: 1111, RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}}}
	if rtx {
		info.SSRCRetransmission, info.PayloadTypeRetransmission = 2222, 97
	}
	out := &sink{}
	w := r.BindLocalStream(info, out)
	var pending []byte
	reader := r.BindRTCPReader(interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		return copy(b, pending), a, nil
	}))
	nack := func(n *rtcp.TransportLayerNack) {
		raw, err := n.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		pending = raw
		if _, _, err := reader.Read(make([]byte, 1500), nil); err != nil {
			t.Fatal(err)
		}
	}
	return r, w, out, nack
}

func send(t *testing.T, w interceptor.RTPWriter, seq uint16) {
	t.Helper()
	payload := []byte{byte(seq), byte(seq >> 8), 0xaa, 0xbb}
	if _, err := w.Write(&rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(seq) * 3000, SSRC: 1111}, payload, nil); err != nil {
		t.Fatal(err)
	}
}

func TestResendsAsRTX(t *testing.T) {
	r, w, out, nack := bind(t, true)
	for seq := uint16(65530); seq != 10; seq++ { // across the wrap
		send(t, w, seq)
	}
	sent := len(out.headers)
	nack(&rtcp.TransportLayerNack{MediaSSRC: 1111, Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{65534, 2, 3})})
	if got := len(out.headers) - sent; got != 3 {
		t.Fatalf("%d retransmissions, want 3", got)
	}
	for i, osn := range []uint16{65534, 2, 3} {
		h, p := out.headers[sent+i], out.payloads[sent+i]
		if h.SSRC != 2222 || h.PayloadType != 97 || h.SequenceNumber != uint16(i) {
			t.Errorf("retransmission %d: ssrc %d pt %d seq %d, want RTX stream 2222/97 seq %d", i, h.SSRC, h.PayloadType, h.SequenceNumber, i)
		}
		if got := binary.BigEndian.Uint16(p); got != osn || p[2] != byte(osn) || p[4] != 0xaa {
			t.Errorf("retransmission %d: OSN %d payload %x, want %d then the original payload", i, got, p, osn)
		}
		if h.Timestamp != uint32(osn)*3000 {
			t.Errorf("retransmission %d keeps timestamp %d, want %d", i, h.Timestamp, uint32(osn)*3000)
		}
	}
	if resent, missed := r.Counts(); resent != 3 || missed != 0 {
		t.Fatalf("counts %d resent %d missed", resent, missed)
	}
}

func TestResendsOriginalWithoutRTX(t *testing.T) {
	_, w, out, nack := bind(t, false)
	for seq := uint16(0); seq < 300; seq++ {
		send(t, w, seq)
	}
	sent := len(out.headers)
	// 5 is long gone from a 128-entry ring; 250 is there; another stream's NACK is ignored.
	nack(&rtcp.TransportLayerNack{MediaSSRC: 1111, Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{5, 250})})
	nack(&rtcp.TransportLayerNack{MediaSSRC: 9999, Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{250})})
	if got := len(out.headers) - sent; got != 1 {
		t.Fatalf("%d retransmissions, want 1 (only 250 is still cached)", got)
	}
	if h := out.headers[sent]; h.SSRC != 1111 || h.SequenceNumber != 250 || h.PayloadType != 96 {
		t.Fatalf("retransmission %+v, want the original packet 250", h)
	}
}

func TestNoAllocationPerPacket(t *testing.T) {
	i, _ := (&Factory{}).NewInterceptor("")
	w := i.BindLocalStream(&interceptor.StreamInfo{SSRC: 1, RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}}},
		interceptor.RTPWriterFunc(func(h *rtp.Header, p []byte, _ interceptor.Attributes) (int, error) { return len(p), nil }))
	h := &rtp.Header{Version: 2, SSRC: 1}
	payload := make([]byte, 1100)
	allocs := testing.AllocsPerRun(1000, func() {
		h.SequenceNumber++
		_, _ = w.Write(h, payload, nil)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet, want 0", allocs)
	}
}
