// Package sfu is Cầu's media engine: a selective forwarding unit ("bridge") built on
// pion/webrtc v4. Endpoints publish tracks on one peer connection and receive other
// endpoints' tracks on a second one; the bridge forwards RTP without decoding it,
// rewriting SSRC, payload type, sequence numbers and timestamps per subscriber.
//
// The package knows nothing of meetings, tokens or HTTP: its caller (signaling) decides
// who subscribes to whom.
package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/sfu/hopstats"
	"github.com/cau-project/cau/sfu/nackgen"
	"github.com/cau-project/cau/sfu/speaker"
	"github.com/cau-project/cau/sfu/udpbatch"
)

// Config configures a Bridge. The zero value is not usable; start from DefaultConfig.
type Config struct {
	// ICEUDPPort is the one UDP port that carries all ICE traffic (UDP mux).
	// 0 picks a free port per interface (tests).
	ICEUDPPort int
	// ICETCPPort is the ICE-TCP port for networks that block UDP. -1 disables ICE-TCP;
	// 0 picks a free port.
	ICETCPPort int
	// PublicIPs replace the host candidates' addresses (NAT 1:1), e.g. a data centre's
	// public address in front of a private one.
	PublicIPs []string
	// Announce adds "ip:port" UDP candidates next to the host ones: an address that a
	// port forward (or a WAN relay) maps to the ICE UDP port.
	Announce []string
	// RelayPorts bounds the UDP ports of relay links' own sockets (relaysock.go): a relay
	// link's connections do not share the ICE UDP port, each binds sockets of its own. The
	// zero value takes any free port.
	RelayPorts PortRange
	// RelayOnMux keeps relay links on the ICE UDP port, as endpoints: for a bridge reachable
	// at that port only. Announce without RelayPorts implies it (a port forward reaches the
	// ICE UDP port, nothing else). The bridge at the other end of each of its links must
	// then use sockets of its own (the default).
	RelayOnMux bool
	// IncludeLoopback adds 127.0.0.1 candidates (dev mode and in-process tests).
	IncludeLoopback bool
	// Logger receives the bridge's logs and pion's; nil means slog.Default().
	Logger *slog.Logger
	// Metrics receives counters; nil disables them.
	Metrics *Metrics
	// Speaker is the Last-N and dominant-speaker tuning of the selectors this bridge makes
	// (NewSelector); zero fields take speaker.DefaultParams (9 videos, 3 audios).
	Speaker speaker.Params
	// FixedTopLayer forwards every simulcast subscription at its source's top layer,
	// whatever its link carries: adaptation off, the reference that benchmarks of
	// adaptation compare with (docs/benchmarks.md). The estimates are still made.
	FixedTopLayer bool
	// PionSRTP leaves the encryption of the RTP forwarded to endpoints to pion's SRTP
	// session, as before own SRTP (ownsrtp.go): the reference for benchmarks, and the way
	// back should a pion upgrade change what the DTLS hooks show (the connections then
	// fall back to pion one by one anyway, and TestOwnSRTPKeysDecryptAtPionSubscriber fails).
	PionSRTP bool
}

// DefaultConfig is the configuration of a dev bridge (see DESIGN.md: UDP 7882, TCP 7881).
func DefaultConfig() Config {
	return Config{ICEUDPPort: 7882, ICETCPPort: 7881}
}

// Bridge owns the WebRTC API shared by all peers: codecs, interceptors and the ICE muxes.
type Bridge struct {
	// api makes endpoints' connections: ICE lite (see New). relayAPI makes the relay
	// links' connections, full ICE on both ends (two lite agents cannot connect).
	api      *webrtc.API
	relayAPI *webrtc.API
	log      *slog.Logger
	metrics  *Metrics
	speaker  speaker.Params
	fixedTop bool // Config.FixedTopLayer; read-only
	udpMux   *ice.MultiUDPMuxDefault
	// egress batches the UDP mux's sends while a fan-out holds it (udpbatch). Nil in
	// benchmarks that build a Bridge by hand: Hold and Release are then no-ops.
	egress *udpbatch.Group
	tcpMux ice.TCPMux
	tcpLn  net.Listener
	// media is every UDP address the bridge receives media on, as endpoints may address
	// it: the mux's sockets, the public addresses with the mux's port, the announced
	// ones. Set in New, read-only after.
	media []netip.AddrPort
	// The lite API's parts, for the subscriber connections' own APIs (subscriberAPI), and
	// the mux's network, whose sockets own SRTP sends on. Set in New, read-only after;
	// ownSRTP is !Config.PionSRTP.
	me      *webrtc.MediaEngine
	ir      *interceptor.Registry
	liteSE  webrtc.SettingEngine
	bn      *batchNet
	ownSRTP bool
	// hops hands each new peer connection its hop measurement (hopstats).
	hops *hopstats.Factory
	// certs is the DTLS certificate of every connection (cert.go).
	certs certSource
	// idle counts the open peers and returns the meeting's memory when the last one has
	// gone (idle.go).
	idle idleState
	// silentNeeds keeps the relay links' receiving ends from reporting needs (need.go),
	// as a bridge from before them: tests compare. Set before the first peer.
	silentNeeds bool
}

// ErrClosed is returned by operations on a closed peer or bridge.
var ErrClosed = errors.New("sfu: closed")

// New starts a bridge: it binds the ICE ports and prepares the codecs and interceptors.
func New(cfg Config) (*Bridge, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "sfu")
	lf := newPionLoggerFactory(log, cfg.Metrics)

	me := &webrtc.MediaEngine{}
	if err := registerCodecs(me); err != nil {
		return nil, fmt.Errorf("register codecs: %w", err)
	}
	// Simulcast publishers (simulcast.go) mark each layer's packets with MID and RID
	// extensions; without them a layer whose SSRC the offer does not list is unknown.
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return nil, fmt.Errorf("register simulcast extensions: %w", err)
	}
	ir := &interceptor.Registry{}
	hops := &hopstats.Factory{}
	// First, nearest the network: it sees every report the others write (the RTCP
	// reports' sender reports, the TWCC generator's feedback).
	ir.Add(hops)
	if err := registerInterceptors(me, ir); err != nil {
		return nil, fmt.Errorf("register interceptors: %w", err)
	}

	se := webrtc.SettingEngine{LoggerFactory: lf}
	// The SRTP read buffers come from hops, which reads the TWCC feedback that receivers
	// address to a retransmission stream's SSRC: pion hands RTCP about an SSRC no sender
	// reads to nobody, and the hop loss read ~70% of the real (hopstats/rtxfeedback.go).
	se.BufferFactory = hops.BufferFactory
	se.SetIncludeLoopbackCandidate(cfg.IncludeLoopback)
	// Endpoints that vanish without a goodbye should be noticed in seconds, not the
	// 30 s pion defaults to: a meeting-room screen must not show a frozen site for long.
	se.SetICETimeouts(5*time.Second, 10*time.Second, 2*time.Second)
	// No mDNS: pion's default (query only) opens a multicast socket with five goroutines
	// and a 9 KB read buffer for every ICE agent, about 60 KB per connection (issue 11),
	// to resolve .local candidates that only hosts on the bridge's own LAN could answer.
	// The lite agent learns an endpoint's address from its checks (peer-reflexive), and a
	// relay link's bridges send plain addresses.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	setDTLSHandshake(&se)
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4}

	b := &Bridge{log: log, metrics: cfg.Metrics, speaker: cfg.Speaker, fixedTop: cfg.FixedTopLayer,
		egress: &udpbatch.Group{}, hops: hops, me: me, ir: ir, ownSRTP: !cfg.PionSRTP}
	bn, err := newBatchNet(b.egress, log)
	if err != nil {
		return nil, err
	}
	b.bn = bn
	muxOpts := []ice.UDPMuxFromPortOption{
		ice.UDPMuxFromPortWithNet(bn),
		ice.UDPMuxFromPortWithNetworks(ice.NetworkTypeUDP4),
		ice.UDPMuxFromPortWithLogger(lf.NewLogger("udpmux")),
	}
	if cfg.IncludeLoopback {
		muxOpts = append(muxOpts, ice.UDPMuxFromPortWithLoopback())
	}
	udpMux, err := ice.NewMultiUDPMuxFromPort(cfg.ICEUDPPort, muxOpts...)
	if err != nil {
		return nil, fmt.Errorf("listen ICE UDP port %d: %w", cfg.ICEUDPPort, err)
	}
	b.udpMux = udpMux
	se.SetICEUDPMux(udpMux)

	if cfg.ICETCPPort >= 0 {
		ln, err := net.ListenTCP("tcp4", &net.TCPAddr{Port: cfg.ICETCPPort})
		if err != nil {
			_ = udpMux.Close()
			return nil, fmt.Errorf("listen ICE TCP port %d: %w", cfg.ICETCPPort, err)
		}
		b.tcpLn = ln
		b.tcpMux = newICETCPMux(ln, lf.NewLogger("tcpmux"), cfg.Metrics)
		se.SetICETCPMux(b.tcpMux)
		networks = append(networks, webrtc.NetworkTypeTCP4)
	}
	se.SetNetworkTypes(networks)
	var rules []webrtc.ICEAddressRewriteRule
	if len(cfg.PublicIPs) > 0 {
		rules = append(rules, webrtc.ICEAddressRewriteRule{
			External:        cfg.PublicIPs,
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		})
	}
	publicRules := len(rules)
	for _, a := range cfg.Announce {
		host, port, err := net.SplitHostPort(a)
		n, perr := strconv.Atoi(port)
		if err != nil || perr != nil || net.ParseIP(host) == nil {
			_ = b.Close()
			return nil, fmt.Errorf("announce %q: want ip:port", a)
		}
		rules = append(rules, webrtc.ICEAddressRewriteRule{
			External:        []string{host},
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteAppend,
			Networks:        []webrtc.NetworkType{webrtc.NetworkTypeUDP4},
			NewPort:         n,
		})
	}
	if len(rules) > 0 {
		if err := se.SetICEAddressRewriteRules(rules...); err != nil {
			_ = b.Close()
			return nil, fmt.Errorf("public addresses %v %v: %w", cfg.PublicIPs, cfg.Announce, err)
		}
	}

	// Relay links: the same settings, on UDP sockets of their own (relaysock.go).
	relay := se
	if !relayOnMux(cfg) {
		if err := ownSockets(&relay, bn.Net, cfg.RelayPorts, log); err != nil {
			_ = b.Close()
			return nil, err
		}
		// A forwarded port reaches the mux, not these sockets: only the public addresses
		// (NAT 1:1, every port) apply to them.
		if err := relay.SetICEAddressRewriteRules(rules[:publicRules]...); err != nil {
			_ = b.Close()
			return nil, fmt.Errorf("public addresses %v: %w", cfg.PublicIPs, err)
		}
	}

	// Towards endpoints the bridge is an ICE lite agent (RFC 8445 §2.5), as a server with
	// known, reachable addresses should be: it answers connectivity checks and never
	// nominates, so the endpoint (always the controlling agent then) picks the candidate
	// pair it can use, on both connections. With full ICE the bridge controlled the
	// subscriber connection (it offers there) and could nominate a pair the endpoint
	// refuses to use: Firefox never sends checks to the bridge's 127.0.0.1 candidate
	// (dev mode), so the pair the bridge nominated never became valid on Firefox's side,
	// DTLS never started and the subscriber connection stayed "connecting" for good.
	// Lite also means the endpoint's mDNS (.local) host candidates need no resolving:
	// the bridge learns the endpoint's address from its checks.
	//
	// Not with announced port forwards (--announce): a lite agent never sends checks, and
	// the checks an endpoint sends to a forwarded address arrive from the forwarder, which
	// the lite agent here does not answer into a usable pair (TestWANRelayLink: the
	// subscriber behind the forward never connected). Full ICE, as before, works there.
	lite := se
	if len(cfg.Announce) == 0 {
		lite.SetLite(true)
	}
	b.liteSE = lite
	b.api = webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir),
		webrtc.WithSettingEngine(lite))
	b.relayAPI = webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir),
		webrtc.WithSettingEngine(relay))
	b.media = mediaAddrs(udpMux.GetListenAddresses(), cfg.PublicIPs, cfg.Announce)
	relayUDP := "own sockets, any port"
	switch {
	case relayOnMux(cfg):
		relayUDP = "ICE UDP port"
	case cfg.RelayPorts != PortRange{}:
		relayUDP = "own sockets, ports " + cfg.RelayPorts.String()
	}
	log.Info("bridge ready", "ice_udp", udpMux.GetListenAddresses(), "ice_tcp", b.tcpAddr(),
		"public_ips", cfg.PublicIPs, "relay_udp", relayUDP)
	return b, nil
}

// MediaAddrs lists the UDP addresses the bridge receives media on (its sockets, and the
// public and announced addresses that reach them): what a TURN relay in front of this
// bridge may send to.
func (b *Bridge) MediaAddrs() []netip.AddrPort {
	return append([]netip.AddrPort(nil), b.media...)
}

func mediaAddrs(listen []net.Addr, public, announce []string) []netip.AddrPort {
	var out []netip.AddrPort
	ports := map[uint16]bool{}
	for _, a := range listen {
		if u, ok := a.(*net.UDPAddr); ok {
			ap := u.AddrPort()
			ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
			out = append(out, ap)
			ports[ap.Port()] = true
		}
	}
	for _, p := range public {
		if ip, err := netip.ParseAddr(p); err == nil {
			for port := range ports {
				out = append(out, netip.AddrPortFrom(ip.Unmap(), port))
			}
		}
	}
	for _, a := range announce {
		if ap, err := netip.ParseAddrPort(a); err == nil {
			out = append(out, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		}
	}
	return out
}

func (b *Bridge) tcpAddr() string {
	if b.tcpLn == nil {
		return "off"
	}
	return b.tcpLn.Addr().String()
}

// Close releases the ICE ports. Peers must be closed first.
func (b *Bridge) Close() error {
	b.stopIdle()
	var errs []error
	if b.tcpMux != nil {
		errs = append(errs, b.tcpMux.Close())
	}
	if b.udpMux != nil {
		errs = append(errs, b.udpMux.Close())
	}
	return errors.Join(errs...)
}

// registerCodecs registers the codecs Cầu forwards: Opus, VP8 and H.264, each video
// codec with RTX so lost packets are repaired on a separate stream.
func registerCodecs(me *webrtc.MediaEngine) error {
	videoFB := []webrtc.RTCPFeedback{
		{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"},
		{Type: "nack", Parameter: "pli"}, {Type: webrtc.TypeRTCPFBTransportCC},
	}
	audio := webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine:  "minptime=10;useinbandfec=1",
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}},
		},
		PayloadType: 111,
	}
	if err := me.RegisterCodec(audio, webrtc.RTPCodecTypeAudio); err != nil {
		return err
	}
	// Publishers' audio levels (RFC 6464) drive the dominant speaker and Last-N (lastn.go);
	// they are passed on to subscribers and relay links.
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI},
		webrtc.RTPCodecTypeAudio); err != nil {
		return err
	}
	video := []struct {
		mime, fmtp string
		pt, rtx    webrtc.PayloadType
	}{
		{webrtc.MimeTypeVP8, "", 96, 97},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", 102, 103},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", 104, 105},
		{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f", 106, 107},
	}
	for _, v := range video {
		c := webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: v.mime, ClockRate: 90000,
				SDPFmtpLine: v.fmtp, RTCPFeedback: videoFB},
			PayloadType: v.pt,
		}
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return err
		}
		rtx := webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000,
				SDPFmtpLine: fmt.Sprintf("apt=%d", v.pt)},
			PayloadType: v.rtx,
		}
		if err := me.RegisterCodec(rtx, webrtc.RTPCodecTypeVideo); err != nil {
			return err
		}
	}
	return nil
}

// registerInterceptors builds the interceptor chain on purpose (STYLE habit 11). The
// first registered sits nearest the network (New adds hopstats before all of these, so
// that it sees what they write). On what the bridge sends, hopstats is the only layer:
// it stamps the TWCC sequence numbers, counts the hop and sends the sender reports, one
// lock and one clock read per frame, where three layers (a TWCC stamper, pion's
// report.SenderInterceptor, the counters) each locked per packet (sfu/hopstats/sender.go).
// Here, on what it receives:
//   - RTCP receiver reports (pion's), so publishers see RTT, jitter and loss;
//   - TWCC feedback, for the publishers' bandwidth estimation (the extension is
//     negotiated here too, for hopstats' numbers);
//   - NACK generation: the bridge repairs each hop itself; nackgen, not pion's
//     generator, which keeps NACKing packets already repaired over RTX.
//
// There is no NACK responder here: a DownTrack answers its subscriber's NACKs itself from
// its up track's packet cache (one per published track, not one ring per subscriber),
// writing through the same chain, so a retransmission gets a TWCC number like any packet.
//
// The receiver reports and the TWCC generator start (with their ticker goroutines) only
// when a connection receives its first stream (remoteOnly, lazystart.go).
//
// The stats interceptor is left out: it costs a map lookup per packet and the bridge
// keeps its own counters. Nothing here allocates per forwarded packet.
func registerInterceptors(me *webrtc.MediaEngine, ir *interceptor.Registry) error {
	receiver, err := report.NewReceiverInterceptor()
	if err != nil {
		return err
	}
	ir.Add(remoteOnly{receiver})
	// webrtc.ConfigureTWCCSender's registrations, with the generator started lazily.
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		me.RegisterFeedback(webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC}, kind)
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, kind); err != nil {
			return err
		}
	}
	twccGen, err := twcc.NewSenderInterceptor()
	if err != nil {
		return err
	}
	ir.Add(remoteOnly{twccGen})
	me.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack"}, webrtc.RTPCodecTypeVideo)
	me.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack", Parameter: "pli"}, webrtc.RTPCodecTypeVideo)
	ir.Add(nackgen.Factory{Window: packetCacheSize})
	return nil
}
