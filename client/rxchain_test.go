package client

import (
	"encoding/binary"
	"sync/atomic"
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// packetSource reads made-up video packets with rising sequence numbers and a
// transport-wide sequence number in extension id 5 (one-byte header extensions).
type packetSource struct{ seq uint16 }

func (p *packetSource) Read(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
	p.seq++
	b[0], b[1] = 0x90, 96 // version 2, extension; payload type 96
	binary.BigEndian.PutUint16(b[2:], p.seq)
	binary.BigEndian.PutUint32(b[4:], uint32(p.seq)*3000)
	binary.BigEndian.PutUint32(b[8:], 1234)
	binary.BigEndian.PutUint16(b[12:], 0xBEDE) // one-byte extensions, one word
	binary.BigEndian.PutUint16(b[14:], 1)
	b[16], b[17], b[18], b[19] = 5<<4|1, byte(p.seq>>8), byte(p.seq), 0
	n := 20 + 1000
	return n, a, nil
}

func TestParseOnceSharesHeader(t *testing.T) {
	if headerKey == nil {
		t.Fatal("pion's Attributes no longer keep the parsed header under one key")
	}
	src := &packetSource{}
	r := (&parseOnce{}).BindRemoteStream(&interceptor.StreamInfo{SSRC: 1234, MimeType: "video/VP8"}, src)
	b := make([]byte, 1500)
	var first *rtp.Header
	for i := 1; i <= 3; i++ {
		n, a, err := r.Read(b, nil)
		if err != nil {
			t.Fatal(err)
		}
		hdr, err := a.GetRTPHeader(b[:n])
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = hdr
		}
		if hdr != first || hdr.SequenceNumber != uint16(i) || hdr.SSRC != 1234 {
			t.Fatalf("read %d: header %p (first %p) seq %d ssrc %d: want the stream's one header, parsed afresh",
				i, hdr, first, hdr.SequenceNumber, hdr.SSRC)
		}
	}
	// An RTX stream's Attributes travel on to the track's reader: not reused.
	rtx := (&parseOnce{}).BindRemoteStream(&interceptor.StreamInfo{SSRC: 99, MimeType: "video/rtx"}, src)
	if _, a, _ := rtx.Read(b, nil); a != nil {
		t.Fatalf("RTX stream got reused attributes %v", a)
	}
}

// TestReceiveChainNoAllocs reads packets through the client's whole interceptor chain
// (parseOnce, nackgen, pion's receiver reports and TWCC feedback) as a subscriber's track
// does: no allocation per received packet.
func TestReceiveChainNoAllocs(t *testing.T) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir, err := interceptors(me)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := ir.Build("")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = chain.Close() }()
	var fed atomic.Int64
	chain.BindRTCPWriter(interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, _ interceptor.Attributes) (int, error) {
		fed.Add(int64(len(pkts)))
		return 0, nil
	}))
	info := &interceptor.StreamInfo{SSRC: 1234, MimeType: "video/VP8", ClockRate: 90000, PayloadType: 96,
		RTPHeaderExtensions: []interceptor.RTPHeaderExtension{{URI: sdp.TransportCCURI, ID: 5}},
		RTCPFeedback:        []interceptor.RTCPFeedback{{Type: "nack"}, {Type: "transport-cc"}}}
	r := chain.BindRemoteStream(info, &packetSource{})
	b := make([]byte, 1500)
	read := func() {
		if _, _, err := r.Read(b, nil); err != nil {
			t.Fatal(err)
		}
	}
	for range 2000 { // past every first-packet setup and the recorder's growth
		read()
	}
	if allocs := testing.AllocsPerRun(1000, read); allocs != 0 {
		t.Fatalf("%v allocations per received packet, want 0", allocs)
	}
	chain.UnbindRemoteStream(info)
}
