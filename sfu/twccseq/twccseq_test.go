package twccseq

import (
	"encoding/binary"
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

func TestNumbersAcrossStreams(t *testing.T) {
	i, _ := Factory{}.NewInterceptor("")
	var got []uint16
	sink := interceptor.RTPWriterFunc(func(h *rtp.Header, _ []byte, _ interceptor.Attributes) (int, error) {
		ext := h.GetExtension(5)
		if len(ext) != 2 {
			t.Fatalf("extension %x, want 2 bytes", ext)
		}
		got = append(got, binary.BigEndian.Uint16(ext))
		return 0, nil
	})
	info := func(ssrc uint32) *interceptor.StreamInfo {
		return &interceptor.StreamInfo{SSRC: ssrc, RTPHeaderExtensions: []interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: 5}}}
	}
	a, b := i.BindLocalStream(info(1), sink), i.BindLocalStream(info(2), sink)
	// A stream without the extension negotiated passes through untouched.
	plain := i.BindLocalStream(&interceptor.StreamInfo{SSRC: 3}, interceptor.RTPWriterFunc(
		func(h *rtp.Header, _ []byte, _ interceptor.Attributes) (int, error) {
			if h.Extension {
				t.Fatal("extension added to a stream that did not negotiate it")
			}
			return 0, nil
		}))
	_, _ = plain.Write(&rtp.Header{Version: 2}, nil, nil)
	for k := 0; k < 3; k++ {
		_, _ = a.Write(&rtp.Header{Version: 2}, nil, nil)
		_, _ = b.Write(&rtp.Header{Version: 2}, nil, nil)
	}
	for k, v := range got {
		if v != uint16(k) {
			t.Fatalf("sequence %v: transport-wide numbers must run 0,1,2… across streams", got)
		}
	}
	h := &rtp.Header{Version: 2}
	allocs := testing.AllocsPerRun(1000, func() {
		h.Extensions = h.Extensions[:0]
		_, _ = a.Write(h, nil, nil)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet, want 0", allocs)
	}
}
