// Package turnserver is the TURN relay embedded in each bridge (github.com/pion/turn),
// for endpoints behind firewalls that let only TCP/TLS on 443 through: UDP (3478 by
// default) and one TCP port that carries both TURN over TCP and TURN over TLS (443 in
// production), told apart by the first byte a client sends.
//
// Credentials are the TURN REST API's (draft-uberti-behave-turn-rest): username
// "<expiry unix seconds>:<user>", password base64(HMAC-SHA1(secret, username)). Signaling
// mints them with every join (Credentials), valid for five minutes: enough to allocate,
// and an allocation, once made, is refreshed with the same credentials for as long as
// the client keeps it. Each user may hold a bounded number of allocations, and a relay
// may only send to the bridge's own media addresses: the server is no open relay.
package turnserver

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the TURN REST scheme is HMAC-SHA1 by definition
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"
)

// CredentialTTL is how long minted credentials are valid.
const CredentialTTL = 5 * time.Minute

// Config configures a Server.
type Config struct {
	// UDPAddr is the TURN/UDP listen address, e.g. ":3478"; empty disables UDP.
	UDPAddr string
	// TCPAddr is the listen address for TURN over TCP and, with Certificate, TURN over TLS
	// on the same port (":443"); empty disables both.
	TCPAddr string
	// Certificate serves TURN over TLS on TCPAddr; nil serves plain TCP only.
	Certificate *tls.Certificate
	// RelayIP is the address relay sockets are bound to and announced with: an address
	// of this machine from which the bridge's media port is reachable.
	RelayIP net.IP
	// Realm names the server in the long-term credential exchange. Default "cau".
	Realm string
	// Secret is shared with signaling, which mints credentials with it. Required.
	Secret []byte
	// MaxAllocationsPerUser bounds each user's concurrent allocations. Default 4 (two
	// connections, each perhaps over two transports while ICE decides).
	MaxAllocationsPerUser int
	// Allowed returns the addresses a relay may send to: the bridge's own media
	// addresses. It is called for every permission and every relayed datagram's
	// destination check, so it should be cheap (a copy of a short list).
	Allowed func() []netip.AddrPort
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
	// LoggerFactory receives pion's own logs; nil discards them.
	LoggerFactory logging.LoggerFactory
}

// Server is a running TURN server.
type Server struct {
	cfg    Config
	log    *slog.Logger
	srv    *turn.Server
	udp    net.PacketConn
	tcp    net.Listener
	quotas *quotas
}

// Errors.
var (
	ErrNoSecret       = errors.New("turnserver: a shared secret is required")
	ErrPeerNotAllowed = errors.New("turnserver: relay destination is not one of the bridge's media addresses")
)

// New starts the server's listeners.
func New(cfg Config) (*Server, error) {
	if len(cfg.Secret) == 0 {
		return nil, ErrNoSecret
	}
	if cfg.RelayIP == nil {
		return nil, errors.New("turnserver: a relay address is required")
	}
	if cfg.Realm == "" {
		cfg.Realm = "cau"
	}
	if cfg.MaxAllocationsPerUser <= 0 {
		cfg.MaxAllocationsPerUser = 4
	}
	if cfg.Allowed == nil {
		cfg.Allowed = func() []netip.AddrPort { return nil }
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{cfg: cfg, log: log.With("component", "turn"), quotas: &quotas{n: map[string]int{}}}
	lf := cfg.LoggerFactory
	if lf == nil {
		lf = &logging.DefaultLoggerFactory{DefaultLogLevel: logging.LogLevelDisabled}
	}
	gen := &filteredRelay{inner: &turn.RelayAddressGeneratorStatic{RelayAddress: cfg.RelayIP,
		Address: cfg.RelayIP.String()}, allowed: s.allowedAddr}
	sc := turn.ServerConfig{
		LoggerFactory: lf,
		Realm:         cfg.Realm,
		AuthHandler:   s.authenticate,
		QuotaHandler:  s.quota,
		EventHandler: turn.EventHandler{
			OnAllocationCreated: func(_, _ net.Addr, _, user, _ string, relay net.Addr, _ int) {
				s.quotas.add(user, 1)
				s.log.Debug("allocation", "user", user, "relay", relay.String())
			},
			OnAllocationDeleted: func(_, _ net.Addr, _, user, _ string) { s.quotas.add(user, -1) },
		},
	}
	var err error
	if cfg.UDPAddr != "" {
		if s.udp, err = net.ListenPacket("udp4", cfg.UDPAddr); err != nil {
			return nil, fmt.Errorf("turn: listen udp %s: %w", cfg.UDPAddr, err)
		}
		sc.PacketConnConfigs = append(sc.PacketConnConfigs, turn.PacketConnConfig{
			PacketConn: s.udp, RelayAddressGenerator: gen, PermissionHandler: s.permit})
	}
	if cfg.TCPAddr != "" {
		ln, err := net.Listen("tcp4", cfg.TCPAddr)
		if err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("turn: listen tcp %s: %w", cfg.TCPAddr, err)
		}
		s.tcp = newSniffListener(ln, cfg.Certificate, s.log)
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{
			Listener: s.tcp, RelayAddressGenerator: gen, PermissionHandler: s.permit})
	}
	if len(sc.PacketConnConfigs) == 0 && len(sc.ListenerConfigs) == 0 {
		return nil, errors.New("turnserver: neither a UDP nor a TCP address is configured")
	}
	if s.srv, err = turn.NewServer(sc); err != nil {
		s.closeListeners()
		return nil, fmt.Errorf("turn: start: %w", err)
	}
	s.log.Info("turn ready", "udp", addrString(s.UDPAddr()), "tcp", addrString(s.TCPAddr()),
		"tls", cfg.Certificate != nil, "relay_ip", cfg.RelayIP.String())
	return s, nil
}

func addrString(a net.Addr) string {
	if a == nil {
		return "off"
	}
	return a.String()
}

// UDPAddr is the bound TURN/UDP address, or nil.
func (s *Server) UDPAddr() net.Addr {
	if s.udp == nil {
		return nil
	}
	return s.udp.LocalAddr()
}

// TCPAddr is the bound TURN/TCP (and TLS) address, or nil.
func (s *Server) TCPAddr() net.Addr {
	if s.tcp == nil {
		return nil
	}
	return s.tcp.Addr()
}

// TLS reports whether the TCP port also serves TURN over TLS.
func (s *Server) TLS() bool { return s.cfg.Certificate != nil && s.tcp != nil }

// Close stops the server and its allocations.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	if err := s.srv.Close(); err != nil {
		return fmt.Errorf("turn: close: %w", err)
	}
	return nil
}

func (s *Server) closeListeners() {
	if s.udp != nil {
		_ = s.udp.Close()
	}
	if s.tcp != nil {
		_ = s.tcp.Close()
	}
}

// Credentials mints TURN REST API credentials for user, valid for ttl from now.
func Credentials(secret []byte, user string, ttl time.Duration, now time.Time) (username, password string) {
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10) + ":" + user
	return username, restPassword(secret, username)
}

func restPassword(secret []byte, username string) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// authenticate checks a TURN REST username: not expired, and the key derived from the
// password signaling minted. The password itself never appears in a log.
func (s *Server) authenticate(ra *turn.RequestAttributes) (string, []byte, bool) {
	expiry, user, ok := strings.Cut(ra.Username, ":")
	t, err := strconv.ParseInt(expiry, 10, 64)
	if !ok || err != nil || user == "" {
		s.log.Info("turn credentials refused: malformed username", "src", ra.SrcAddr.String())
		return "", nil, false
	}
	if time.Now().Unix() > t {
		s.log.Info("turn credentials refused: expired", "user", user, "src", ra.SrcAddr.String(),
			"expired", time.Unix(t, 0).UTC().Format(time.RFC3339))
		return "", nil, false
	}
	pw := restPassword(s.cfg.Secret, ra.Username)
	return user, turn.GenerateAuthKey(ra.Username, ra.Realm, pw), true
}

// quota refuses a new allocation (486) once the user holds MaxAllocationsPerUser. pion
// passes the user id authenticate returned.
func (s *Server) quota(user, _ string, src net.Addr) bool {
	if n := s.quotas.get(user); n >= s.cfg.MaxAllocationsPerUser {
		s.log.Warn("turn allocation refused: quota reached", "user", user, "src", src.String(), "allocations", n)
		return false
	}
	return true
}

// permit allows permissions (and channels) only towards the bridge's own addresses.
func (s *Server) permit(client net.Addr, peer net.IP) bool {
	ip, ok := netip.AddrFromSlice(peer)
	if ok {
		ip = ip.Unmap()
		for _, a := range s.cfg.Allowed() {
			if a.Addr() == ip {
				return true
			}
		}
	}
	s.log.Warn("turn permission refused: not a media address of this bridge", "client", client.String(), "peer", peer.String())
	return false
}

// allowedAddr checks a relayed datagram's destination, port included: a permission is
// per address, but only the bridge's media port may be reached through it.
func (s *Server) allowedAddr(a net.Addr) bool {
	u, ok := a.(*net.UDPAddr)
	if !ok {
		return false
	}
	ap := u.AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	for _, x := range s.cfg.Allowed() {
		if x == ap {
			return true
		}
	}
	return false
}

// quotas counts each user's live allocations.
type quotas struct {
	mu sync.Mutex // guards n
	n  map[string]int
}

func (q *quotas) add(user string, d int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.n[user] += d
	if q.n[user] <= 0 {
		delete(q.n, user)
	}
}

func (q *quotas) get(user string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n[user]
}

// filteredRelay makes UDP relay sockets that send only to allowed destinations; TCP
// allocations (RFC 6062) are refused: browsers do not use them and they would reach
// arbitrary TCP services.
type filteredRelay struct {
	inner   *turn.RelayAddressGeneratorStatic
	allowed func(net.Addr) bool
}

func (r *filteredRelay) Validate() error { return r.inner.Validate() }

func (r *filteredRelay) AllocatePacketConn(c turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	conn, addr, err := r.inner.AllocatePacketConn(c)
	if err != nil {
		return nil, nil, err
	}
	return &filteredConn{PacketConn: conn, allowed: r.allowed}, addr, nil
}

func (r *filteredRelay) AllocateListener(turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, errors.New("turnserver: TCP relay allocations are not offered")
}

func (r *filteredRelay) AllocateConn(turn.AllocateConnConfig) (net.Conn, error) {
	return nil, errors.New("turnserver: TCP relay allocations are not offered")
}

// filteredConn drops datagrams to destinations outside the allowed set, and datagrams
// from them: a relay carries media between one client and this bridge only.
type filteredConn struct {
	net.PacketConn
	allowed func(net.Addr) bool
}

func (c *filteredConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if !c.allowed(addr) {
		return 0, fmt.Errorf("%w: %s", ErrPeerNotAllowed, addr)
	}
	return c.PacketConn.WriteTo(p, addr)
}

func (c *filteredConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil || c.allowed(addr) {
			return n, addr, err
		}
	}
}

// sniffListener serves TURN over TCP and TURN over TLS on one port: a TLS connection
// starts with a handshake record (0x16), a TURN one with a STUN message (first two bits
// zero) or ChannelData (0x40–0x7f). The first byte is read on a goroutine per
// connection, so a client that connects and says nothing holds up no one.
type sniffListener struct {
	net.Listener
	cert  *tls.Certificate
	log   *slog.Logger
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newSniffListener(ln net.Listener, cert *tls.Certificate, log *slog.Logger) *sniffListener {
	l := &sniffListener{Listener: ln, cert: cert, log: log, conns: make(chan net.Conn), done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

func (l *sniffListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			l.once.Do(func() { close(l.done) })
			return
		}
		go l.sniff(c)
	}
}

func (l *sniffListener) sniff(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	pc := &peekedConn{Conn: c}
	if _, err := io.ReadFull(c, pc.first[:]); err != nil {
		_ = c.Close()
		return
	}
	pc.pending = true
	_ = c.SetReadDeadline(time.Time{})
	var out net.Conn = pc
	if pc.first[0] == 0x16 {
		if l.cert == nil {
			l.log.Debug("turn: TLS client on a plain TCP port", "src", c.RemoteAddr().String())
			_ = c.Close()
			return
		}
		out = tls.Server(out, &tls.Config{Certificates: []tls.Certificate{*l.cert}, MinVersion: tls.VersionTLS12})
	}
	select {
	case l.conns <- out:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *sniffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *sniffListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() { close(l.done) })
	return err
}

// peekedConn gives back the sniffed byte first, then reads the connection itself. Not a
// bufio.Reader: its 4 KiB stayed with every TURN-over-TCP client for the connection's
// life (issue 11: 5 kB per endpoint of a meeting whose endpoints allocate over TCP).
// Read is called by one goroutine at a time (the TURN server's, or TLS's), as for any
// net.Conn; it alone touches pending.
type peekedConn struct {
	net.Conn
	first   [1]byte
	pending bool
}

// Read implements net.Conn; the sniffed byte comes back as a read of its own.
func (c *peekedConn) Read(p []byte) (int, error) {
	if c.pending && len(p) > 0 {
		c.pending = false
		p[0] = c.first[0]
		return 1, nil
	}
	return c.Conn.Read(p)
}
