package app

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/turnserver"
)

// TURNConfig configures the local bridge's embedded TURN server. With neither a Secret
// nor Dev it stays off.
type TURNConfig struct {
	// Secret is the TURN REST shared secret. Dev mode makes a random one when empty.
	Secret string
	// UDPAddr and TCPAddr are the listen addresses (TCPAddr serves TCP and, with a
	// certificate, TLS). Defaults: ":3478" and ":443"; in dev mode free loopback ports
	// (tests; `cau serve --dev` asks for 3478 and 5349). "-" disables one.
	UDPAddr, TCPAddr string
	// Host is what clients put in turn: URLs. Default: the listen IP if specific, else
	// the first public IP, else the HTTP listen host.
	Host string
	// Certificate enables TURN over TLS; dev mode makes a self-signed one when nil.
	Certificate *tls.Certificate
	// RelayIP binds the relay sockets. Default: the bridge's first non-loopback media
	// address, else 127.0.0.1.
	RelayIP net.IP
	// MaxAllocationsPerUser bounds each endpoint's allocations. Default 4.
	MaxAllocationsPerUser int
}

// startTURN starts the embedded TURN server in front of the local bridge, or returns nil
// when it is off.
func (a *App) startTURN(cfg Config) error {
	t := cfg.TURN
	if a.bridge == nil || (t.Secret == "" && !cfg.Dev) {
		return nil
	}
	if t.Secret == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		t.Secret = hex.EncodeToString(b)
	}
	udp, tcp := t.UDPAddr, t.TCPAddr
	if udp == "" {
		udp = ":3478"
		if cfg.Dev {
			udp = "127.0.0.1:0"
		}
	}
	if tcp == "" {
		tcp = ":443"
		if cfg.Dev {
			tcp = "127.0.0.1:0"
		}
	}
	if udp == "-" {
		udp = ""
	}
	if tcp == "-" {
		tcp = ""
	}
	cert := t.Certificate
	if cert == nil && cfg.Dev && tcp != "" {
		c, err := turnserver.SelfSigned([]string{"localhost", "127.0.0.1"}, 30*24*time.Hour)
		if err != nil {
			return err
		}
		cert = &c
	}
	media := a.bridge.MediaAddrs()
	relayIP := t.RelayIP
	if relayIP == nil {
		relayIP = net.IPv4(127, 0, 0, 1)
		for _, m := range media {
			if !m.Addr().IsLoopback() && m.Addr().Is4() {
				relayIP = net.IP(m.Addr().AsSlice())
				break
			}
		}
	}
	srv, err := turnserver.New(turnserver.Config{UDPAddr: udp, TCPAddr: tcp, Certificate: cert,
		RelayIP: relayIP, Secret: []byte(t.Secret), MaxAllocationsPerUser: t.MaxAllocationsPerUser,
		Allowed: func() []netip.AddrPort { return media }, Logger: a.log})
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	a.turn = srv
	a.turnSecret = []byte(t.Secret)
	a.turnURLs = turnURLs(srv, t.Host, cfg)
	return nil
}

// turnURLs lists the server's turn: and turns: URIs (RFC 7065) under host.
func turnURLs(s *turnserver.Server, host string, cfg Config) []string {
	pick := func(a net.Addr) string {
		if host != "" {
			return host
		}
		if h, _, err := net.SplitHostPort(a.String()); err == nil {
			if ip := net.ParseIP(h); ip != nil && !ip.IsUnspecified() {
				return h
			}
		}
		if len(cfg.PublicIPs) > 0 {
			return cfg.PublicIPs[0]
		}
		if h, _, err := net.SplitHostPort(cfg.HTTPAddr); err == nil && h != "" && h != "0.0.0.0" {
			return h
		}
		return "localhost"
	}
	port := func(a net.Addr) string {
		_, p, _ := net.SplitHostPort(a.String())
		return p
	}
	var urls []string
	if a := s.UDPAddr(); a != nil {
		urls = append(urls, "turn:"+net.JoinHostPort(pick(a), port(a))+"?transport=udp")
	}
	if a := s.TCPAddr(); a != nil {
		urls = append(urls, "turn:"+net.JoinHostPort(pick(a), port(a))+"?transport=tcp")
		if s.TLS() {
			urls = append(urls, "turns:"+net.JoinHostPort(pick(a), port(a))+"?transport=tcp")
		}
	}
	return urls
}

// iceServers is signaling's Config.ICEServers: the local bridge's TURN server with
// credentials for this participant. Remote bridges' TURN servers are not announced yet.
func (a *App) iceServers(bridge ids.BridgeID, participant ids.ParticipantID) []protocol.ICEServer {
	if a.turn == nil || a.sig.Local() == nil || bridge != a.sig.Local().ID() {
		return nil
	}
	user, pass := turnserver.Credentials(a.turnSecret, string(participant), turnserver.CredentialTTL, time.Now())
	return []protocol.ICEServer{{URLs: a.turnURLs, Username: user, Credential: pass}}
}

// TURNAddrs are the embedded TURN server's UDP and TCP addresses ("" when off), for
// tests and the dev banner.
func (a *App) TURNAddrs() (udp, tcp string) {
	if a.turn == nil {
		return "", ""
	}
	if x := a.turn.UDPAddr(); x != nil {
		udp = x.String()
	}
	if x := a.turn.TCPAddr(); x != nil {
		tcp = x.String()
	}
	return udp, tcp
}
