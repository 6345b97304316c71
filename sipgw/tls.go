package sipgw

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// SIP over TLS (RFC 3261 §26.2, RFC 5630): with Config.TLS the gateway also listens on a
// TLS port, answers calls that arrive there like any other, and keeps their in-dialog
// requests (BYE, INFO, session refreshes) on the connection the INVITE came on
// (dialogTLS, RewriteContact), as over TCP. Rooms whose URI asks for TLS (sips:, or
// ;transport=tls) are called over it, their certificate checked against
// Config.TLSClient's roots.
//
// Only the signalling is protected: media keys (SDES, a=crypto) travel in the SDP, so
// SRTP with SDES is only as private as the SIP it rides on. A call that uses SDES over
// UDP or TCP gets one warning in the log (warnPlainSDES).

// listenTLS binds the TLS listener when Config.TLS is set; host is Addr's host, used
// when TLSAddr names none.
func (g *Gateway) listenTLS(ctx context.Context, host netip.Addr) error {
	if g.cfg.TLS == nil {
		return nil
	}
	ap, err := tlsListenAddr(g.cfg.TLSAddr, host)
	if err != nil {
		return err
	}
	conf := g.cfg.TLS.Clone()
	if conf.MinVersion < tls.VersionTLS12 {
		conf.MinVersion = tls.VersionTLS12
	}
	if len(conf.Certificates) == 0 && conf.GetCertificate == nil {
		return fmt.Errorf("listen tls %s: the TLS configuration has no certificate", ap)
	}
	lc := net.ListenConfig{}
	l, err := lc.Listen(ctx, "tcp", ap.String())
	if err != nil {
		return fmt.Errorf("listen tls %s: %w", ap, err)
	}
	g.tls = tls.NewListener(l, conf)
	g.tlsAddr = netip.AddrPortFrom(ap.Addr(), uint16(l.Addr().(*net.TCPAddr).Port))
	return nil
}

// tlsListenAddr reads Config.TLSAddr: ip:port, ip alone (port DefaultTLSPort), or empty
// (host, DefaultTLSPort).
func tlsListenAddr(s string, host netip.Addr) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPortFrom(host, DefaultTLSPort), nil
	}
	if ip, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(ip, DefaultTLSPort), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("TLS listen address %q (want ip or ip:port): %w", s, err)
	}
	return ap, nil
}

// clientTLS is the configuration the gateway dials rooms with: Config.TLSClient, at
// least TLS 1.2.
func (g *Gateway) clientTLS() *tls.Config {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if g.cfg.TLSClient != nil {
		conf = g.cfg.TLSClient.Clone()
		if conf.MinVersion < tls.VersionTLS12 {
			conf.MinVersion = tls.VersionTLS12
		}
	}
	return conf
}

// TLSAddr is where the gateway listens for SIP over TLS (zero without Config.TLS).
func (g *Gateway) TLSAddr() netip.AddrPort { return g.tlsAddr }

// TLSURI is the SIP URI that dials meeting over TLS, e.g.
// sip:demo@127.0.0.1:5061;transport=tls ("" without Config.TLS).
func (g *Gateway) TLSURI(meeting string) string {
	if g.tls == nil {
		return ""
	}
	return "sip:" + meeting + "@" + g.tlsAddr.String() + ";transport=tls"
}

// uriTransport is the transport a room's URI asks for: "tls" for sips: or
// ;transport=tls, "tcp" or "udp" as its transport parameter says (udp by default); ok is
// false for any other (the gateway does not dial SCTP or WebSocket).
func uriTransport(uri sip.Uri) (transport string, ok bool) {
	transport = "udp"
	if uri.UriParams != nil {
		if tr, set := uri.UriParams.Get("transport"); set && tr != "" {
			transport = strings.ToLower(tr)
		}
	}
	if strings.EqualFold(uri.Scheme, "sips") {
		return "tls", transport == "udp" || transport == "tcp" || transport == "tls"
	}
	return transport, transport == "udp" || transport == "tcp" || transport == "tls"
}

// dialogUA is the dialog maker for a call that arrived over transport (as
// sip.Request.Transport spells it: UDP, TCP, TLS).
func (g *Gateway) dialogUA(transport string) *sipgo.DialogUA {
	switch strings.ToUpper(transport) {
	case "UDP":
		return g.dialogUDP
	case "TLS":
		return g.dialogTLS
	}
	return g.dialogTCP
}

// warnPlainSDES logs, once per gateway, that a call's SDES keys crossed the network in
// clear SIP (transport UDP or TCP): its SRTP is only as private as that path.
func (g *Gateway) warnPlainSDES(c *call, transport string) {
	if strings.EqualFold(transport, "TLS") || !c.secure() || !g.plainSDES.CompareAndSwap(false, true) {
		return
	}
	c.log.Warn("sip call uses SRTP with SDES keys over SIP without TLS: the keys are readable on the network path; "+
		"configure a TLS certificate and have rooms dial over TLS (logged once)", "transport", transport)
}
