package sfu

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/internal/testpeer"
	"github.com/cau-project/cau/sfu/udpbatch"
)

// ownSRTPPair is one bridge-side pion connection whose DTLS handshake a dtlsKeys watched
// (its own API, on a udpbatch socket under a UDP mux, as the bridge's are) and a pion
// endpoint subscribed to its one video track.
type ownSRTPPair struct {
	keys   *dtlsKeys
	bridge *webrtc.PeerConnection
	sub    *webrtc.PeerConnection
	sender *webrtc.RTPSender
	conn   *udpbatch.Conn
	got    chan *rtp.Packet
}

func newOwnSRTPPair(t *testing.T, g *udpbatch.Group, role webrtc.DTLSRole, endpoint ownSRTPEndpoint) *ownSRTPPair {
	t.Helper()
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &ownSRTPPair{keys: &dtlsKeys{}, conn: g.New(uc), got: make(chan *rtp.Packet, 64)}
	mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: p.conn})
	t.Cleanup(func() { _ = mux.Close() })
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetICEUDPMux(mux)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	p.keys.install(&se)
	bridgeAPI := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se))
	if p.bridge, err = bridgeAPI.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	subAPI := testpeer.API(t, nil, nil, func(se *webrtc.SettingEngine) {
		testpeer.Loopback(se)
		if role == webrtc.DTLSRoleServer { // the endpoint answers as DTLS server: the bridge is client
			_ = se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer)
		}
		if endpoint.se != nil {
			endpoint.se(se)
		}
	})
	if p.sub, err = subAPI.NewPeerConnection(endpoint.cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.sub.Close(); _ = p.bridge.Close() })
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "v", "s")
	if err != nil {
		t.Fatal(err)
	}
	if p.sender, err = p.bridge.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	p.sub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			p.got <- pkt
		}
	})
	connected := make(chan struct{})
	var once sync.Once
	p.bridge.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	offer := testpeer.Offer(t, p.bridge)
	if err := p.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		t.Fatal(err)
	}
	answer := testpeer.Answer(t, p.sub)
	if err := p.bridge.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("bridge connection never connected")
	}
	return p
}

// remote is the selected candidate pair's remote address.
func (p *ownSRTPPair) remote(t *testing.T) netip.AddrPort {
	t.Helper()
	pair, err := p.sender.Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatalf("selected pair: %v %v", pair, err)
	}
	return netip.AddrPortFrom(netip.MustParseAddr(pair.Remote.Address), pair.Remote.Port)
}

// ownSRTPEndpoint is what an endpoint of a test pair offers beyond pion's defaults.
type ownSRTPEndpoint struct {
	se  func(*webrtc.SettingEngine)
	cfg webrtc.Configuration
}

// send encrypts packets with seqs in ctx and writes them from the bridge's socket to the
// selected candidate pair's remote address, bypassing pion's SRTP session and ICE conn.
func (p *ownSRTPPair) send(t *testing.T, ctx *srtp.Context, seqs []uint16) {
	t.Helper()
	to := net.UDPAddrFromAddrPort(p.remote(t))
	params := p.sender.GetParameters()
	h := rtp.Header{Version: 2, PayloadType: uint8(params.Codecs[0].PayloadType), SSRC: uint32(params.Encodings[0].SSRC)}
	var buf []byte
	for i, seq := range seqs {
		h.SequenceNumber, h.Timestamp = seq, uint32(i)*3000
		// A VP8 keyframe start (S bit, P=0) then a marker, so the subscriber's track starts.
		// With a header extension, which cryptex (when negotiated) must encrypt.
		pkt := &rtp.Packet{Header: h, Payload: []byte{0x10, 0x00, 0x9d, 0x01, 0x2a, byte(i)}}
		if err := pkt.SetExtension(1, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		raw, err := pkt.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if buf, err = ctx.EncryptRTP(buf[:0], raw, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := p.conn.WriteTo(buf, to); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // in order, not faster than loopback's buffers
	}
}

// TestOwnSRTPKeysDecryptAtPionSubscriber: the SRTP send keys derived from what the
// DTLS hooks saw are the connection's own. Several handshakes run at once (each
// connection's hooks see only its own), packets encrypted with those keys and sent from
// the bridge's socket reach a pion subscriber's track intact, across a sequence-number
// rollover (the rollover counter is our context's and the receiver's alone), and a
// connection where the bridge is the DTLS client learns no keys.
func TestOwnSRTPKeysDecryptAtPionSubscriber(t *testing.T) {
	g := &udpbatch.Group{}
	// What the endpoint offers decides the profile, the suite (so the PRF hash) and the
	// master secret's derivation; each pair is one of them.
	variants := []ownSRTPEndpoint{
		{}, // pion's defaults: AEAD_AES_256_GCM, extended master secret, cryptex negotiated
		{se: func(se *webrtc.SettingEngine) { se.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM) }},
		{se: func(se *webrtc.SettingEngine) { se.SetSRTPProtectionProfiles(dtls.SRTP_AES128_CM_HMAC_SHA1_80) }},
		{se: func(se *webrtc.SettingEngine) { se.SetDTLSExtendedMasterSecret(dtls.DisableExtendedMasterSecret) }},
		{se: func(se *webrtc.SettingEngine) { se.SetDTLSCipherSuites(dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384) }},
		{se: func(se *webrtc.SettingEngine) { se.SetDTLSCipherSuites(dtls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA) }},
		// An endpoint that refuses header extensions in clear (cryptex required) and one
		// that does not speak cryptex: followCryptex must match each.
		{cfg: webrtc.Configuration{RTPHeaderEncryptionPolicy: webrtc.RTPHeaderEncryptionPolicyRequire}},
		{cfg: webrtc.Configuration{RTPHeaderEncryptionPolicy: webrtc.RTPHeaderEncryptionPolicyDisable}},
	}
	pairs := make([]*ownSRTPPair, len(variants))
	var wg sync.WaitGroup
	for i := range pairs {
		wg.Add(1)
		go func() { defer wg.Done(); pairs[i] = newOwnSRTPPair(t, g, webrtc.DTLSRoleClient, variants[i]) }()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	seqs := []uint16{65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 2, 3}
	checks := make([]*srtp.Context, len(pairs))
	sends := make([]*srtp.Context, len(pairs))
	profiles := make([]srtp.ProtectionProfile, len(pairs))
	for i, p := range pairs {
		var err error
		if sends[i], profiles[i], checks[i], err = p.keys.keys(); err != nil {
			t.Fatalf("pair %d: %v", i, err)
		}
	}
	// The key check (ownsrtp.go): what pion's session writes to the pair's remote address
	// opens with the derived key, and not with another connection's.
	bn := &batchNet{}
	for i, p := range pairs {
		p.conn.SetWatch(bn.watch)
		to := p.remote(t)
		probe := func() error {
			_, err := p.bridge.SCTP().Transport().WriteRTCP([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 1}})
			return err
		}
		if err := bn.checkKey(to, checks[i], probe); err != nil {
			t.Fatalf("pair %d: own key check: %v", i, err)
		}
		other := checks[(i+1)%len(pairs)]
		if err := bn.checkKey(to, other, probe); !errors.Is(err, errKeyCheck) {
			t.Fatalf("pair %d: checked with another connection's key: %v, want errKeyCheck", i, err)
		}
	}
	for i, p := range pairs {
		ctx, profile := sends[i], profiles[i]
		o := &ownSRTP{ctx: ctx}
		if err := o.followCryptex(p.bridge.CurrentRemoteDescription()); err != nil {
			t.Fatal(err)
		}
		var parsed sdp.SessionDescription
		if err := parsed.UnmarshalString(p.bridge.CurrentRemoteDescription().SDP); err != nil {
			t.Fatal(err)
		}
		t.Logf("pair %d: profile %v, suite %s, cryptex %v", i, profile, dtls.CipherSuiteName(p.keys.suite), cryptexIn(&parsed))
		p.send(t, ctx, seqs)
		for j, seq := range seqs {
			select {
			case pkt := <-p.got:
				if pkt.SequenceNumber != seq || !bytes.Equal(pkt.Payload, []byte{0x10, 0x00, 0x9d, 0x01, 0x2a, byte(j)}) ||
					!bytes.Equal(pkt.GetExtension(1), []byte{byte(j)}) {
					t.Fatalf("pair %d packet %d: seq %d payload %x", i, j, pkt.SequenceNumber, pkt.Payload)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("pair %d: packet %d (seq %d) never decrypted at the subscriber", i, j, seq)
			}
		}
		if _, _, _, err := p.keys.keys(); err == nil {
			t.Fatalf("pair %d: keys derived twice", i)
		}
	}

	// The bridge as DTLS client (as on some relay links): the server random is the far
	// end's and never seen here, so no keys.
	c := newOwnSRTPPair(t, g, webrtc.DTLSRoleServer, ownSRTPEndpoint{})
	if _, _, _, err := c.keys.keys(); err == nil {
		t.Fatal("keys derived as DTLS client")
	} else {
		t.Log(fmt.Sprint("client role: ", err))
	}
}
