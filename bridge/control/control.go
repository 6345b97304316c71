// Package control is signaling's end of the bridge control protocol (protocol/bridge.go):
// the /bridge WebSocket that `cau bridge` processes register on, and Remote, the handle
// signaling drives such a bridge through. Package bridge's Run is the other end.
//
// The package knows nothing of meetings: it authenticates bridges, turns their messages
// into bridge.Events and Heartbeat calls, turns Remote's method calls into commands, and
// says when a bridge is gone.
package control

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/bridge"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
)

// Liveness (issue 12: a hung bridge's endpoints move in under a second). A bridge pings
// every BeatInterval on its control socket, apart from its heartbeat (which carries every
// endpoint's figures and is built once a second); signaling declares it down after
// DefaultTimeout without a message or ping. A loaded box must not make signaling misfire,
// so the watchdog judges silence only while it could have heard the bridge: not while the
// socket's reader is busy in a handler (the bridge's messages wait in the socket), nor on
// a tick that came late (this process was starved, and its reader with it). A silence of
// HardTimeout ends the bridge whatever the reason.
const (
	// BeatInterval is how often a bridge pings (protocol.BridgeRegister.BeatMillis).
	BeatInterval = bridge.BeatInterval
	// DefaultTimeout is the silence that ends a bridge that beats: five beats missed.
	DefaultTimeout = 500 * time.Millisecond
	// HardTimeout is the silence that ends any bridge, and the timeout of one that does
	// not beat (heartbeats come every second): a hard limit under any load.
	HardTimeout = 3 * time.Second
)

const (
	// writeWait is how long one frame to a bridge may take to leave. A bridge busy with
	// hundreds of joins reads its socket late; a timed-out write breaks the connection for
	// good (gorilla), so it must not come before the liveness watchdog, which tells a hung
	// bridge (HardTimeout) from a slow one.
	writeWait = 30 * time.Second
	// pingEvery keeps an idle control socket alive through NATs and lets the bridge notice
	// a dead signaling server (it gives up after 35 s without one).
	pingEvery = 15 * time.Second
	// sendBacklog is how many commands may wait for a slow bridge before it is cut off: a
	// join of one endpoint in a meeting of 60 streams queues about 70, and a bridge of a
	// national meeting takes hundreds of joins in a burst (issue 10).
	sendBacklog = 16384
	// readLimit bounds one message: heartbeats carry every endpoint's link figures, so a
	// bridge with hundreds of endpoints sends more than an endpoint may. Bridges are
	// authenticated; 8 MiB still bounds them.
	readLimit = protocol.MaxControlMessageBytes
)

// ErrClosed is returned by a Remote whose connection has ended.
var ErrClosed = errors.New("bridge connection closed")

// Config configures a Server. The callbacks are signaling's; each is called from the
// bridge's reader goroutine (Down from whichever goroutine notices first), never under a
// lock of this package.
type Config struct {
	// Keys verify the bridge tokens (role and use bridge; see BridgeClaims).
	Keys auth.Keys
	// KnownSite says whether the site tree has a site; a bridge for another is refused.
	// Nil accepts any site (no tree configured).
	KnownSite func(ids.SiteID) bool
	Logger    *slog.Logger
	// Registered admits a bridge that registered, before any of its messages is read. It
	// returns where the bridge's events go, or an error to refuse it (e.g. the id is taken).
	Registered func(b *Remote) (bridge.Events, error)
	// Heartbeat delivers a bridge's load report (every second).
	Heartbeat func(b *Remote, hb protocol.BridgeHeartbeat)
	// Down is called once when an admitted bridge's socket ends or its heartbeats stop.
	Down func(b *Remote, why string)
	// Timeout is the silence after which a bridge that beats is declared down; 0 means
	// DefaultTimeout. It is raised to four of the bridge's beats and capped at HardTimeout;
	// a Timeout above HardTimeout raises that cap too (a machine so loaded that a live
	// bridge goes unheard for longer, as in the national meeting's test).
	Timeout time.Duration
}

// BridgeClaims are the claims of bridge id's token for site: role and use bridge (so no
// other surface accepts it), the site and the id (as subject) it may register as, and
// nothing else.
func BridgeClaims(site ids.SiteID, id ids.BridgeID) auth.Claims {
	c := auth.Claims{Use: auth.UseBridge, Role: auth.RoleBridge, Site: string(site)}
	c.Subject = string(id)
	return c
}

// ErrNotBridgeToken refuses a token that is not a bridge's.
var ErrNotBridgeToken = errors.New("not a bridge token (role and use bridge, a site)")

// verify checks a bridge token.
func (s *Server) verify(tok string) (*auth.Claims, error) {
	claims, err := s.cfg.Keys.Verify(tok, auth.UseBridge)
	if err != nil {
		return nil, err
	}
	if claims.Role != auth.RoleBridge || claims.Site == "" {
		return nil, ErrNotBridgeToken
	}
	return claims, nil
}

// bind checks a registration against the credential: the site must be the token's (an
// empty one takes it), the id the token's subject if it names one, and the site one the
// tree knows. A bridge cannot choose where it sits, so it cannot attract other sites'
// endpoints.
func (s *Server) bind(claims *auth.Claims, reg *protocol.BridgeRegister) error {
	if reg.Site == "" {
		reg.Site = ids.SiteID(claims.Site)
	}
	if reg.Site != ids.SiteID(claims.Site) {
		return fmt.Errorf("this bridge token is for site %q, not %q", claims.Site, reg.Site)
	}
	if claims.Subject != "" && reg.ID != ids.BridgeID(claims.Subject) {
		return fmt.Errorf("this bridge token is for bridge %q, not %q", claims.Subject, reg.ID)
	}
	if s.cfg.KnownSite != nil && !s.cfg.KnownSite(reg.Site) {
		return fmt.Errorf("site %q is not in the site tree", reg.Site)
	}
	return nil
}

// Server serves /bridge.
type Server struct {
	cfg      Config
	log      *slog.Logger
	upgrader websocket.Upgrader
}

// New creates a Server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Server{cfg: cfg, log: cfg.Logger, upgrader: websocket.Upgrader{
		ReadBufferSize: 4096, WriteBufferSize: 4096,
		// Bridges are processes, not pages: a request from a browser page is refused.
		CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == "" },
	}}
}

// ServeHTTP handles /bridge: a bridge process registers and is then driven over the
// socket until it goes. The request must carry a bridge token (Authorization: Bearer …).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	claims, err := s.verify(tok)
	if err != nil {
		s.log.Warn("bridge refused", "remote", r.RemoteAddr, "err", err)
		http.Error(w, "a bridge token is required", http.StatusUnauthorized)
		return
	}
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has written the HTTP error
	}
	conn.SetReadLimit(readLimit)
	reqID, reg, err := readRegister(conn)
	if err != nil {
		s.refuse(conn, reqID, protocol.CodeBadMessage, err)
		return
	}
	if err := s.bind(claims, &reg); err != nil {
		s.refuse(conn, reqID, protocol.CodeForbidden, err)
		return
	}
	rb := &Remote{conn: conn, id: reg.ID, site: reg.Site, send: make(chan []byte, sendBacklog), pong: make(chan string, 1),
		done: make(chan struct{}),
		log:  s.log.With("bridge", string(reg.ID), "site", string(reg.Site)), down: s.cfg.Down}
	rb.timeout, rb.hard = s.timeout(reg.BeatMillis), max(HardTimeout, s.cfg.Timeout)
	rb.lastSeen.Store(time.Now().UnixNano())
	conn.SetPingHandler(rb.ping)
	ev, err := s.cfg.Registered(rb)
	if err != nil {
		s.refuse(conn, reqID, protocol.CodeForbidden, err)
		return
	}
	rb.ev = ev
	go rb.writeLoop()
	_ = rb.push(protocol.KindBridgeRegistered, reqID, nil)
	rb.log.Info("bridge registered", "remote", r.RemoteAddr)
	go rb.watchdog()
	rb.readLoop(s.cfg.Heartbeat)
}

// timeout is the silence that ends a bridge beating every beatMillis (0: not beating).
func (s *Server) timeout(beatMillis int) time.Duration {
	if beatMillis <= 0 {
		return HardTimeout
	}
	t := s.cfg.Timeout
	if t <= 0 {
		t = DefaultTimeout
	}
	return min(max(t, 4*time.Duration(beatMillis)*time.Millisecond), max(HardTimeout, t))
}

// readRegister reads the first message, which must register a bridge with a valid id.
func readRegister(conn *websocket.Conn) (string, protocol.BridgeRegister, error) {
	var reg protocol.BridgeRegister
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := conn.ReadMessage()
	if err != nil {
		return "", reg, err
	}
	env, err := protocol.DecodeControl(data)
	if err == nil && env.Kind != protocol.KindBridgeRegister {
		err = fmt.Errorf("first message is %s, want register", env.Kind)
	}
	if err == nil {
		err = protocol.DecodeData(env, &reg)
	}
	if err == nil && (!reg.ID.Valid() || reg.ID == ids.LocalBridge) {
		err = fmt.Errorf("register needs an id (not %q, no \"~\" or spaces)", ids.LocalBridge)
	}
	return env.ID, reg, err
}

func (s *Server) refuse(conn *websocket.Conn, reqID, code string, err error) {
	s.log.Warn("bridge registration refused", "remote", conn.RemoteAddr().String(), "err", err)
	if b, encErr := protocol.Encode(protocol.KindError, reqID, protocol.Error{Code: code, Message: err.Error()}); encErr == nil {
		_ = conn.SetWriteDeadline(time.Now().Add(writeWait))
		_ = conn.WriteMessage(websocket.TextMessage, b)
	}
	_ = conn.Close()
}
