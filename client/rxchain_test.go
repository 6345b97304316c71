package client

import (
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

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
		if seq, ok := transportSeq(hdr, 5); !ok || seq != uint16(i) {
			t.Fatalf("read %d: transport-wide sequence %d %v", i, seq, ok)
		}
	}
	// An RTX stream's Attributes travel on to the track's reader: not reused.
	rtx := (&parseOnce{}).BindRemoteStream(&interceptor.StreamInfo{SSRC: 99, MimeType: "video/rtx"}, src)
	if _, a, _ := rtx.Read(b, nil); a != nil {
		t.Fatalf("RTX stream got reused attributes %v", a)
	}
}

// TestReceiveChainNoAllocs reads packets through the client's whole interceptor chain
// (parseOnce, nackgen, pion's receiver reports, TWCC feedback) as a subscriber's track
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

// TestTWCCFeedbackToSender sends video from a plain pion peer to a peer built as the
// client builds its connections, over loopback, and reads what comes back: transport-wide
// feedback about every tenth of a second that reports the packets sent.
func TestTWCCFeedbackToSender(t *testing.T) {
	recvAPI, _, err := newAPI(true, nil)
	if err != nil {
		t.Fatal(err)
	}
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureTWCCHeaderExtensionSender(me, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	sendAPI := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))

	sender, err := sendAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sender.Close() }()
	receiver, err := recvAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = receiver.Close() }()

	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "v", "s")
	if err != nil {
		t.Fatal(err)
	}
	rtpSender, err := sender.AddTrack(track)
	if err != nil {
		t.Fatal(err)
	}
	var received atomic.Int64
	receiver.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		buf := make([]byte, 1500)
		for {
			if _, _, err := tr.Read(buf); err != nil {
				return
			}
			received.Add(1)
		}
	})
	var feedback, reported atomic.Int64
	go func() {
		for {
			pkts, _, err := rtpSender.ReadRTCP()
			if err != nil {
				return
			}
			for _, p := range pkts {
				if cc, ok := p.(*rtcp.TransportLayerCC); ok {
					feedback.Add(1)
					reported.Add(int64(len(cc.RecvDeltas)))
				}
			}
		}
	}()

	offer, err := sender.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(sender)
	if err := sender.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	if err := receiver.SetRemoteDescription(*sender.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := receiver.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered = webrtc.GatheringCompletePromise(receiver)
	if err := receiver.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	if err := sender.SetRemoteDescription(*receiver.LocalDescription()); err != nil {
		t.Fatal(err)
	}

	// 100 packets a second until the first arrives (ICE, DTLS), then for 1.5 s.
	payload := make([]byte, 1000)
	var sent, since int64
	deadline := time.Now().Add(10 * time.Second)
	for seq := uint16(0); time.Now().Before(deadline); seq++ {
		if err := track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq,
			Timestamp: uint32(seq) * 900, PayloadType: 96}, Payload: payload}); err != nil {
			t.Fatal(err)
		}
		sent++
		if since == 0 && received.Load() > 0 {
			since = sent
			deadline = time.Now().Add(1500 * time.Millisecond)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // the last feedback
	if since == 0 {
		t.Fatal("no media arrived in 10 s")
	}
	got, fb, rep := received.Load(), feedback.Load(), reported.Load()
	t.Logf("sent %d (%d before the first arrived), received %d, feedback packets %d reporting %d packets",
		sent, since, got, fb, rep)
	// Over ~1.8 s at one feedback per 100 ms: 12 to 21 (a loaded machine delays a few).
	if fb < 10 || fb > 25 {
		t.Errorf("%d feedback packets in ~1.8 s, want one every 100 ms", fb)
	}
	if rep < got*9/10 {
		t.Errorf("feedback reported %d packets of %d received", rep, got)
	}
}
