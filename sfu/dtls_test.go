package sfu

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/internal/testpeer"
)

// dtlsWatch is an endpoint's UDP socket that counts the DTLS handshake messages it
// receives, by type (RFC 6347 §4.2.2: record header 13 bytes, then the handshake type).
type dtlsWatch struct {
	net.PacketConn
	helloVerify, serverHello atomic.Int64
}

func (w *dtlsWatch) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := w.PacketConn.ReadFrom(p)
	// Content type 22 (handshake), an unencrypted epoch 0 record: a hello's type is readable.
	if err == nil && n > 13 && p[0] == 22 && p[3] == 0 && p[4] == 0 {
		switch p[13] {
		case 3:
			w.helloVerify.Add(1)
		case 2:
			w.serverHello.Add(1)
		}
	}
	return n, addr, err
}

// TestSubscriberDTLSWithoutHelloVerify (issue 11, join storms): the bridge answers an
// endpoint's ClientHello with its ServerHello at once, without the HelloVerifyRequest
// round trip, and media flows. A browser is the DTLS client on its subscriber connection
// (it answers the bridge's offer with setup:active), the connection whose handshake a
// join waits for before its first media.
func TestSubscriberDTLSWithoutHelloVerify(t *testing.T) {
	b := newTestBridge(t)
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	watch := &dtlsWatch{PacketConn: conn}
	mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: watch})
	t.Cleanup(func() { _ = mux.Close() })
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI},
		webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	api := testpeer.API(t, me, nil, func(se *webrtc.SettingEngine) {
		testpeer.Loopback(se)
		se.SetICEUDPMux(mux)
		// As browsers answer: setup:active, the DTLS client (pion alone would take the
		// server's part towards an ICE lite offerer).
		if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleClient); err != nil {
			t.Fatal(err)
		}
	})

	var r room
	pub := r.join(t, b, "pub")
	owner := "sub"
	sub := newTestEndpointWith(t, b, owner, r.onTrack(&owner), endpointOpts{api: api})
	r.mu.Lock()
	r.endpoints = append(r.endpoints, sub)
	r.mu.Unlock()
	pub.publish()
	sub.waitPackets(t, 20*time.Second, "stream-"+pub.name, webrtc.RTPCodecTypeAudio, 5, "audio through the bridge")

	if n := watch.serverHello.Load(); n == 0 {
		t.Fatalf("no ServerHello seen on the endpoint's socket: the check watched the wrong handshake")
	}
	if n := watch.helloVerify.Load(); n != 0 {
		t.Errorf("the bridge sent %d HelloVerifyRequests; want none (one round trip more per join)", n)
	}
}
