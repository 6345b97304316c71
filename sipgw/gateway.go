// Package sipgw is Cầu's SIP video gateway: a meeting room's hardware codec (Poly, Cisco,
// Yealink, …) dials sip:<meeting>@<cau-host> and joins the meeting with video both ways.
//
// SIP runs over UDP and TCP, and over TLS with a certificate (github.com/emiago/sipgo). A call is answered with plain
// RTP/AVP(F) media on the gateway's own UDP ports, no ICE, with symmetric RTP latching
// (leg.go): audio in G.722 or G.711 (PCMU or PCMA) and video in H.264 packetization
// mode 1; a room whose video cannot be matched joins audio-only (callinfo.go says why).
//
// Like the WHIP gateway, this one has no side door into the meeting: each call is an
// endpoint attached to signaling (signaling.Attach) that joins with a join token the
// gateway signs for the meeting (role room, the configured site), is placed on a bridge
// like a browser, appears in the meeting and the roll call, and holds the two WebRTC
// connections a browser holds with its bridge (call.go):
//   - the publisher connection carries the room's camera as it came, H.264 RTP
//     forwarded without transcoding, and its microphone, G.711 or G.722 transcoded to Opus;
//   - the subscriber connection receives the meeting; the room is sent one video, the
//     floor holder's or the dominant speaker's, switched at a keyframe (follow.go), and
//     one sound, the mix of the voices the bridge forwards it, never its own (mix.go).
//
// A call joins saying it decodes H.264 only (protocol.Join.VideoCodecs): browsers then
// publish their camera in H.264, so the room sees them.
//
// Keyframes: a WebRTC subscriber's PLI reaches the gateway as a PLI on the publisher
// connection and goes to the room as RTCP PLI (or FIR) when the room's SDP offered that
// feedback, else as SIP INFO picture_fast_update (RFC 5168); the room's own PLI and FIR
// become a PLI to the bridge for the stream it receives.
//
// What calls can do is documented in README.md ("Room codecs (SIP)"): INVITE with an
// offer (early offer) or without one (late offer: the offer is in the 200 OK and the
// answer in the ACK), ACK, BYE, CANCEL, OPTIONS, INFO, re-INVITE (hold and resume, a
// moved address; one without SDP refreshes the session as it is), UPDATE, and session
// timers (timer.go). Media are SRTP with SDES keys when the room offers them, or always
// with SRTPMandatory (srtp.go). With accounts, calls authenticate by digest (auth.go). The
// gateway also calls rooms by itself (dialer.go), over TLS when the room's URI asks for
// it (tls.go).
package sipgw

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/logbudget"
	"github.com/cau-project/cau/signaling"
)

// DefaultAddr is where `cau serve --dev` listens for SIP (UDP and TCP).
const DefaultAddr = "127.0.0.1:5060"

// DefaultTLSPort is where SIP over TLS listens when a certificate is configured and
// Config.TLSAddr names no port (RFC 3261 §19.1.2).
const DefaultTLSPort = 5061

// DefaultMaxCalls caps the calls of one gateway.
const DefaultMaxCalls = 64

// DefaultSite is the site calls are attributed to when Config.Site is empty.
const DefaultSite = "sip"

// setupTimeout bounds a call's join and its publisher negotiation.
const setupTimeout = 15 * time.Second

// Config configures a Gateway.
type Config struct {
	Signaling *signaling.Server
	// Keys sign the join token of each call.
	Keys   auth.Keys
	Logger *slog.Logger
	// Metrics are the cau_sip_* series (nil: unregistered ones).
	Metrics *Metrics
	// Addr is the host:port to listen on for SIP, UDP and TCP alike (port 0 picks a free
	// one, the same for both). The host must be an IP address: media is bound to it and
	// announced in SDP unless MediaIP says otherwise.
	Addr string
	// TLS, when set (with a certificate), makes the gateway listen for SIP over TLS on
	// TLSAddr (ip:port; empty: Addr's host, port DefaultTLSPort; port 0 picks a free one).
	TLS     *tls.Config
	TLSAddr string
	// TLSClient verifies the rooms the gateway calls over TLS (their URI says
	// transport=tls, or is sips:): nil verifies against the system's roots. Its
	// certificate, if any, is shown to rooms that ask for one.
	TLSClient *tls.Config
	// MediaIP is the address RTP is bound to and announced (zero: Addr's host).
	MediaIP netip.Addr
	// Site is the site calls dialled in join as (DefaultSite when empty), unless they
	// authenticate with one of Accounts (its site) or were placed by the gateway (the
	// target's).
	Site string
	// Allow lists the networks calls are taken from (403 Forbidden from anywhere else);
	// empty takes calls from any address. Without Accounts there is no PIN or digest: the
	// meeting id is the address, so this (and the firewall) is what keeps strangers out.
	Allow []netip.Prefix
	// Accounts, when set, make every call dialled in prove one by digest (auth.go); the
	// call then joins as the account's site. Realm is the digest realm (DefaultRealm).
	Accounts []Account
	Realm    string
	// MaxCalls caps calls in progress (486 Busy Here beyond); 0 means DefaultMaxCalls.
	MaxCalls int
	// SRTP is SRTPOptional (SRTP with SDES keys when the room offers them; the default
	// when empty) or SRTPMandatory (a call without them is refused with 488, and the
	// gateway's own offers are SRTP).
	SRTP string
	// SessionExpires is the session-timer interval given to a room that supports timers
	// but asks for none; MinSE the least interval taken (422 below it). Defaults when
	// zero (DefaultSessionExpires, DefaultMinSE); tests shorten them.
	SessionExpires, MinSE time.Duration
	// Loopback lets the connections to the bridge use loopback candidates (dev, tests).
	Loopback bool

	// Targets lists the rooms the gateway calls by itself (dialer.go); nil: none.
	Targets Targets
	// DialPoll is how often Targets is read (DefaultDialPoll when zero).
	DialPoll time.Duration
	// DialBackoff is the wait before calling a room again after a failure or a drop,
	// doubled per failure in a row up to DialBackoffMax (defaults when zero).
	DialBackoff, DialBackoffMax time.Duration
}

// Gateway answers SIP calls into meetings. Start it with Start, stop it with Close.
type Gateway struct {
	cfg Config
	log *slog.Logger
	m   *Metrics
	api *webrtc.API // the calls' connections to their bridge
	// auth checks the digest of calls dialled in; nil without Config.Accounts.
	auth *authenticator

	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	client  *sipgo.Client
	udp     net.PacketConn
	tcp     net.Listener
	tls     net.Listener   // nil without Config.TLS
	addr    netip.AddrPort // where SIP listens, set by Start
	tlsAddr netip.AddrPort // where SIP over TLS listens (zero without Config.TLS)
	mediaIP netip.Addr

	// dialogUDP and dialogTCP make the dialogs of calls dialled in, per transport (their
	// Contact differs). Over TCP the gateway's requests in a dialog (BYE, INFO, session
	// refreshes) go back on the connection the INVITE came on, not to a new one opened to
	// the Contact: a room behind NAT or a firewall takes no connection, and many codecs
	// do not listen for one.
	dialogUDP, dialogTCP, dialogTLS *sipgo.DialogUA

	// plainSDES is set the first time a call's SDES keys travel over SIP without TLS (the
	// warning is logged once: the keys are readable on the path).
	plainSDES atomic.Bool

	mu     sync.Mutex       // guards calls and closed
	calls  map[string]*call // by Call-ID
	closed bool

	wg sync.WaitGroup // the SIP servers

	dialer     *dialer            // nil without Config.Targets
	stopDialer context.CancelFunc // set by Start with dialer
}

// New creates a Gateway.
func New(cfg Config) (*Gateway, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.MaxCalls == 0 {
		cfg.MaxCalls = DefaultMaxCalls
	}
	if cfg.Site == "" {
		cfg.Site = DefaultSite
	}
	if cfg.Realm == "" {
		cfg.Realm = DefaultRealm
	}
	if cfg.SessionExpires <= 0 {
		cfg.SessionExpires = DefaultSessionExpires
	}
	if cfg.MinSE <= 0 {
		cfg.MinSE = DefaultMinSE
	}
	switch cfg.SRTP {
	case "":
		cfg.SRTP = SRTPOptional
	case SRTPOptional, SRTPMandatory:
	default:
		return nil, fmt.Errorf("sip gateway: SRTP policy %q (want %q or %q)", cfg.SRTP, SRTPOptional, SRTPMandatory)
	}
	if cfg.DialPoll <= 0 {
		cfg.DialPoll = DefaultDialPoll
	}
	if cfg.DialBackoff <= 0 {
		cfg.DialBackoff = DefaultDialBackoff
	}
	if cfg.DialBackoffMax <= 0 {
		cfg.DialBackoffMax = DefaultDialBackoffMax
	}
	api, err := newAPI(cfg.Loopback)
	if err != nil {
		return nil, fmt.Errorf("sip gateway: %w", err)
	}
	return &Gateway{cfg: cfg, log: cfg.Logger.With("component", "sipgw"), m: cfg.Metrics, api: api,
		auth: newAuthenticator(cfg.Realm, cfg.Accounts), calls: map[string]*call{}}, nil
}

// Start listens on Config.Addr, UDP and TCP, and serves until Close.
func (g *Gateway) Start(ctx context.Context) error {
	ap, err := netip.ParseAddrPort(g.cfg.Addr)
	if err != nil {
		return fmt.Errorf("sip gateway: listen address %q (want ip:port): %w", g.cfg.Addr, err)
	}
	g.mediaIP = g.cfg.MediaIP
	if !g.mediaIP.IsValid() {
		g.mediaIP = ap.Addr()
	}
	if g.mediaIP.IsUnspecified() {
		return errors.New("sip gateway: listening on an unspecified address needs a media IP to announce")
	}
	if err := g.listen(ctx, ap); err != nil {
		return fmt.Errorf("sip gateway: %w", err)
	}
	if err := g.listenTLS(ctx, ap.Addr()); err != nil {
		g.closeListeners()
		return fmt.Errorf("sip gateway: %w", err)
	}
	// sipgo logs through our logger (it would use slog's default); a message it cannot
	// parse is logged there and dropped, or answered 400 when it has enough headers. It
	// logs each such datagram at ERROR with its content: anyone can send them, and one
	// may carry credentials, so its lines spend from a log budget and the content is
	// logged as its length (internal/logbudget, as pion's lines at the media ports).
	sipLog := slog.New(logbudget.Handler(g.log.Handler(), &logbudget.Budget{}, "sip", "data"))
	if g.ua, err = sipgo.NewUA(sipgo.WithUserAgent("cau"), sipgo.WithUserAgentHostname(g.addr.Addr().String()),
		sipgo.WithUserAgenTLSConfig(g.clientTLS()),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(sipLog)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(sipLog))); err != nil {
		g.closeListeners()
		return fmt.Errorf("sip gateway: %w", err)
	}
	if g.srv, err = sipgo.NewServer(g.ua, sipgo.WithServerLogger(sipLog)); err != nil {
		g.closeListeners()
		return fmt.Errorf("sip gateway: %w", err)
	}
	if g.client, err = sipgo.NewClient(g.ua, sipgo.WithClientLogger(sipLog)); err != nil {
		g.closeListeners()
		return fmt.Errorf("sip gateway: %w", err)
	}
	g.dialogUDP = &sipgo.DialogUA{Client: g.client, ContactHDR: g.contact("udp")}
	g.dialogTCP = &sipgo.DialogUA{Client: g.client, ContactHDR: g.contact("tcp"), RewriteContact: true}
	g.dialogTLS = &sipgo.DialogUA{Client: g.client, ContactHDR: g.contact("tls"), RewriteContact: true}
	g.routes()
	g.wg.Add(2)
	go func() { defer g.wg.Done(); _ = g.srv.ServeUDP(g.udp) }()
	go func() { defer g.wg.Done(); _ = g.srv.ServeTCP(g.tcp) }()
	transports := "udp,tcp"
	if g.tls != nil {
		transports += ",tls"
		g.wg.Add(1)
		go func() { defer g.wg.Done(); _ = g.srv.ServeTLS(g.tls) }()
	}
	if g.cfg.Targets != nil {
		var dctx context.Context
		dctx, g.stopDialer = context.WithCancel(context.WithoutCancel(ctx))
		g.dialer = &dialer{g: g, keep: map[string]context.CancelFunc{}}
		g.dialer.wg.Add(1)
		go g.dialer.run(dctx)
	}
	g.log.Info("sip gateway listening", "addr", g.addr.String(), "transports", transports, "tls_addr", g.tlsAddr.String(),
		"media_ip", g.mediaIP.String(), "audio", opusAvailable)
	return nil
}

// contact is the gateway's Contact for dialogs over transport ("udp", "tcp", "tls").
func (g *Gateway) contact(transport string) sip.ContactHeader {
	uri := sip.Uri{Scheme: "sip", User: "cau", Host: g.addr.Addr().String(), Port: int(g.addr.Port())}
	if transport == "tls" && g.tlsAddr.IsValid() {
		uri.Port = int(g.tlsAddr.Port())
	}
	if transport != "udp" {
		uri.UriParams = sip.NewParams()
		uri.UriParams.Add("transport", transport)
	}
	return sip.ContactHeader{Address: uri}
}

// listen binds UDP and TCP on the same port (port 0: the first free port both take).
func (g *Gateway) listen(ctx context.Context, ap netip.AddrPort) error {
	lc := net.ListenConfig{}
	var lastErr error
	for range 10 {
		udp, err := lc.ListenPacket(ctx, "udp", ap.String())
		if err != nil {
			return fmt.Errorf("listen udp %s: %w", ap, err)
		}
		port := udp.LocalAddr().(*net.UDPAddr).Port
		tcp, err := lc.Listen(ctx, "tcp", netip.AddrPortFrom(ap.Addr(), uint16(port)).String())
		if err == nil {
			g.udp, g.tcp = udp, tcp
			g.addr = netip.AddrPortFrom(ap.Addr(), uint16(port))
			return nil
		}
		_ = udp.Close()
		lastErr = err
		if ap.Port() != 0 {
			break
		}
	}
	return fmt.Errorf("listen tcp: %w", lastErr)
}

func (g *Gateway) closeListeners() {
	if g.udp != nil {
		_ = g.udp.Close()
	}
	if g.tcp != nil {
		_ = g.tcp.Close()
	}
	if g.tls != nil {
		_ = g.tls.Close()
	}
}

// Addr is where the gateway listens for SIP (valid after Start).
func (g *Gateway) Addr() netip.AddrPort { return g.addr }

// URI is the SIP URI that dials meeting, e.g. sip:demo@127.0.0.1:5060.
func (g *Gateway) URI(meeting string) string {
	return "sip:" + meeting + "@" + g.addr.String()
}

// Calls returns the number of calls in progress.
func (g *Gateway) Calls() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls)
}

// Close hangs up every call and stops listening.
func (g *Gateway) Close() {
	if g.dialer != nil {
		g.stopDialer()
		g.dialer.wg.Wait() // its calls hang up
	}
	g.mu.Lock()
	g.closed = true
	all := make([]*call, 0, len(g.calls))
	for _, c := range g.calls {
		all = append(all, c)
	}
	g.mu.Unlock()
	for _, c := range all {
		c.hangup("gateway closing")
	}
	if g.srv == nil {
		return
	}
	g.closeListeners()
	_ = g.client.Close()
	_ = g.srv.Close()
	_ = g.ua.Close()
	g.wg.Wait()
}

// allowed is the Allow header's value: the methods a call takes.
const allowed = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE"

func (g *Gateway) routes() {
	g.srv.OnInvite(g.onInvite)
	g.srv.OnAck(g.onAck)
	g.srv.OnBye(g.onBye)
	g.srv.OnCancel(func(req *sip.Request, tx sip.ServerTransaction) {
		// A CANCEL that matched an INVITE is answered by the transaction layer (200, then
		// 487 to the INVITE), which ends the call's setup; one that did not arrives here.
		g.m.request("CANCEL")
		g.respond(req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
	})
	g.srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		g.m.request("OPTIONS")
		g.respond(req, tx, sip.StatusOK, "OK",
			sip.NewHeader("Allow", allowed), sip.NewHeader("Accept", "application/sdp"), sip.NewHeader("Supported", "timer"))
	})
	g.srv.OnInfo(g.onInfo)
	g.srv.OnUpdate(func(req *sip.Request, tx sip.ServerTransaction) {
		g.m.request("UPDATE")
		g.reinvite(req, tx)
	})
	g.srv.OnNoRoute(func(req *sip.Request, tx sip.ServerTransaction) {
		g.m.request(string(req.Method))
		g.respond(req, tx, sip.StatusMethodNotAllowed, "Method Not Allowed", sip.NewHeader("Allow", allowed))
	})
}

// respond answers req with status and reason and the headers given (a refusal's
// Unsupported, WWW-Authenticate, Allow or Min-SE). A failed send is logged at debug: the
// transaction layer retransmits or times out on its own.
func (g *Gateway) respond(req *sip.Request, tx sip.ServerTransaction, status int, reason string, headers ...sip.Header) {
	res := sip.NewResponseFromRequest(req, status, reason, nil)
	for _, h := range headers {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		g.log.Debug("sip respond", "status", status, "err", err)
	}
}

// inDialog finds the call an in-dialog request belongs to, or answers 481 and returns nil.
func (g *Gateway) inDialog(req *sip.Request, tx sip.ServerTransaction) *call {
	c := g.lookup(req)
	if c == nil {
		g.respond(req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
	}
	return c
}

func (g *Gateway) lookup(req *sip.Request) *call {
	id := req.CallID()
	if id == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[id.Value()]
}

func callIDOf(req *sip.Request) string {
	if id := req.CallID(); id != nil {
		return id.Value()
	}
	return ""
}

// forget drops c from the calls (its close).
func (g *Gateway) forget(c *call) {
	g.mu.Lock()
	if g.calls[c.id] == c {
		delete(g.calls, c.id)
	}
	g.mu.Unlock()
}

// randomID is a random positive 63-bit number (SDP session ids, SSRCs take its low bits).
func randomID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) >> 1
}
