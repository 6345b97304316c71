package client

import (
	"fmt"
	"net"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/internal/udpbuf"
	"github.com/cau-project/cau/sfu/nackgen"
)

// SocketBuffer is the receive and send buffer a connection asks for on its own UDP
// socket (without Options.UDPConn). The kernel charges only what is queued.
const SocketBuffer = 4 << 20

// newAPI builds the pion API the client's connections share: default codecs with the
// audio level extension, NACK and TWCC interceptors, UDP4 only: on the loopback
// interface alone when loopback, all ICE over one mux on conn when conn is set.
func newAPI(loopback bool, conn net.PacketConn) (*webrtc.API, ice.UDPMux, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, nil, err
	}
	// As browsers do: the microphone's level with each audio packet (RFC 6464), which the
	// bridge's dominant-speaker detection and Last-N read.
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI},
		webrtc.RTPCodecTypeAudio); err != nil {
		return nil, nil, err
	}
	ir, err := interceptors(me)
	if err != nil {
		return nil, nil, err
	}
	se := webrtc.SettingEngine{}
	// No mDNS: nobody here resolves .local names, and each peer connection would open
	// multicast sockets and a reader goroutine for it (leaked past Close on a loaded box).
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	// As browsers answer the bridge's subscriber offer: setup:active, the DTLS client. Left
	// to itself pion takes the server's part towards an ICE lite offerer and sends a
	// HelloVerifyRequest, a round trip on every join that no browser costs the bridge, and
	// the load tester's join times would carry it (issue 11).
	if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleClient); err != nil {
		return nil, nil, err
	}
	if loopback {
		se.SetIncludeLoopbackCandidate(true)
		se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	}
	var mux ice.UDPMux
	if conn != nil {
		mux = ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: conn})
		se.SetICEUDPMux(mux)
	} else {
		// The connection's own sockets, with large buffers: at the kernel's default a
		// second without the CPU (hundreds of endpoints in one load tester) overflows
		// them, and ICE checks and DTLS flights lost so cost a resend each (issue 11).
		std, err := stdnet.NewNet()
		if err != nil {
			return nil, nil, fmt.Errorf("network interfaces: %w", err)
		}
		// Read in batches (batchread_linux.go): one system call for what is queued.
		se.SetNet(&batchNet{udpbuf.Net{Net: std, Bytes: SocketBuffer}})
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), mux, nil
}

// interceptors is pion's default chain with these changes:
//   - NACKs come from nackgen, which counts packets the bridge repaired over RTX as
//     received; pion's generator asks for them again every interval and spends the
//     bridge's retransmission budget for this client.
//   - What the client sends is numbered with TWCC sequence numbers, as browsers do (the
//     bridge measures the endpoint's uplink as a hop from them, sfu/hopstats), by an
//     interceptor registered first, so that it sits nearest the network, below the NACK
//     responder: a retransmission gets a number of its own, as a browser's does.
//     Registered last, it stamped packets before the responder kept them, a
//     retransmission repeated the lost packet's number, and the bridge's feedback reported
//     it received: 8% uplink loss measured as none.
//   - The received packets' headers are parsed once (parseOnce), and TWCC feedback is
//     sent by twccFeedback, which records a packet without a goroutine hand-off and
//     sends every connection's feedback from one goroutine (issue 11).
//   - No stats interceptor: it backs PeerConnection.GetStats, which nothing here calls (a
//     Stream keeps its own loss, jitter and latency, stats.go), and it cost 2.7% of the
//     load tester's CPU in a join storm (a queue entry per packet; issue 11).
func interceptors(me *webrtc.MediaEngine) (*interceptor.Registry, error) {
	ir := &interceptor.Registry{}
	// First among the readers, so innermost: every interceptor above finds the header
	// parsed (parseOnce).
	ir.Add(parseOnceFactory{})
	if err := webrtc.ConfigureTWCCHeaderExtensionSender(me, ir); err != nil {
		return nil, err
	}
	responder, err := nack.NewResponderInterceptor()
	if err != nil {
		return nil, err
	}
	me.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack"}, webrtc.RTPCodecTypeVideo)
	me.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack", Parameter: "pli"}, webrtc.RTPCodecTypeVideo)
	ir.Add(responder)
	ir.Add(nackgen.Factory{})
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return nil, err
	}
	// TWCC feedback as pion's ConfigureTWCCSender negotiates it, sent by twccFeedback.
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		me.RegisterFeedback(webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC}, kind)
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, kind); err != nil {
			return nil, err
		}
	}
	ir.Add(twccFactory{wheel: rxWheel})
	return ir, nil
}
