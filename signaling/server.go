// Package signaling is Cầu's WebSocket signaling: it authenticates endpoints, keeps the
// live membership of each meeting, and wires every published track to the other
// endpoints through the bridge. The wire format is package protocol.
package signaling

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/bridge"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/sfu"
	"github.com/gorilla/websocket"
)

// Config configures a Server.
type Config struct {
	// Bridge is the bridge in this process; nil for signaling alone (`cau signal`), which
	// then uses only registered bridge processes.
	Bridge *sfu.Bridge
	// Site is the site the local bridge serves (normally the root of the tree).
	Site string
	// Ancestry places endpoints and bridges in the site tree; nil puts everyone on the
	// local bridge (or any bridge).
	Ancestry Ancestry
	Keys     auth.Keys
	Logger   *slog.Logger
	// Metrics receives counters; nil disables them.
	Metrics *Metrics
	// AllowedOrigins lists extra browser origins (scheme://host:port) allowed to open
	// the socket; the server's own host is always allowed.
	AllowedOrigins []string
	// JoinTimeout bounds the wait for the first (join) message. Default 10 s.
	JoinTimeout time.Duration
	// Store holds scheduled meetings, their floors, roll call and audit; nil keeps
	// everything in memory (every meeting ad hoc).
	Store rooms.Store
	// Tree is the site registry (ending a meeting, validation); may be nil.
	Tree *rooms.Tree
	// Presence shares participants with other signaling nodes (Redis); nil for one node.
	Presence Presence
	// AdHocMeetings lets tokens open meetings the store does not have (dev mode, tests).
	// Without a store every meeting is ad hoc.
	AdHocMeetings bool
	// MessageRate and MessageBurst bound each socket's message rate. Defaults 50/s, 100.
	MessageRate  float64
	MessageBurst int
}

// Server serves /ws. It owns the live meetings.
type Server struct {
	cfg      Config
	log      *slog.Logger
	upgrader websocket.Upgrader

	router router
	focus  focus
	local  *LocalBridge

	mu       sync.Mutex // guards meetings and closed
	meetings map[string]*meeting
	closed   bool
}

// ErrServerClosed is returned to joins that arrive while the server shuts down.
var ErrServerClosed = errors.New("signaling: server closed")

// New creates a Server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.JoinTimeout == 0 {
		cfg.JoinTimeout = 10 * time.Second
	}
	if cfg.MessageRate == 0 {
		cfg.MessageRate = 50
	}
	if cfg.MessageBurst == 0 {
		cfg.MessageBurst = 100
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "signaling"), meetings: map[string]*meeting{}}
	s.router.owners = map[ownerKey]peerOwner{}
	s.focus.ancestry = cfg.Ancestry
	s.focus.bridges = map[string]*bridgeEntry{}
	if cfg.Bridge != nil {
		s.local = &LocalBridge{id: "local", site: cfg.Site}
		s.local.agent = bridge.NewAgent(cfg.Bridge, s.router.events(s.local), s.log)
		s.focus.root = s.local
		s.focus.add(s.local)
	}
	s.upgrader = websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		CheckOrigin:     s.checkOrigin,
	}
	return s
}

// checkOrigin allows non-browser clients (no Origin), the page's own host, and the
// configured origins: a page elsewhere cannot ride a user's session.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, o := range s.cfg.AllowedOrigins {
		if strings.EqualFold(strings.TrimRight(o, "/"), origin) {
			return true
		}
	}
	s.log.Warn("websocket origin refused", "origin", origin, "host", r.Host)
	return false
}

// ServeHTTP upgrades the request to a WebSocket and runs the session until it ends.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug("websocket upgrade", "err", err, "remote", r.RemoteAddr)
		return // the upgrader has written the HTTP error
	}
	sess := newSession(s, conn, r.RemoteAddr)
	sess.run()
}

// meetingFor returns the live meeting with id, creating it; sched is the scheduled
// meeting (nil for an ad hoc one).
func (s *Server) meetingFor(id string, sched *rooms.Meeting) (*meeting, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrServerClosed
	}
	m := s.meetings[id]
	if m == nil {
		m = newMeeting(s, id, sched)
		s.meetings[id] = m
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.Meetings.Inc()
		}
	}
	return m, nil
}

// dropMeetingIfEmpty forgets m once its last participant has left.
func (s *Server) dropMeetingIfEmpty(m *meeting) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.meetings[m.id] == m && m.empty() {
		delete(s.meetings, m.id)
		m.stop()
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.Meetings.Dec()
		}
	}
}

// Participants returns the participants of a live meeting (nil if none).
func (s *Server) Participants(meetingID string) []protocol.Participant {
	s.mu.Lock()
	m := s.meetings[meetingID]
	s.mu.Unlock()
	if m == nil {
		return nil
	}
	return m.snapshot("")
}

// Placement returns, for a live meeting, each participant's bridge: participant id →
// bridge id.
func (s *Server) Placement(meetingID string) map[string]string {
	s.mu.Lock()
	m := s.meetings[meetingID]
	s.mu.Unlock()
	out := map[string]string{}
	if m == nil {
		return out
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, p := range m.participants {
		if p.bridge != nil {
			out[id] = p.bridge.ID()
		}
	}
	return out
}

// PeerOf returns the bridge peer id of a participant of a live meeting ("" if none).
func (s *Server) PeerOf(meetingID, participantID string) string {
	s.mu.Lock()
	m := s.meetings[meetingID]
	s.mu.Unlock()
	if m == nil {
		return ""
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.participants[participantID]; p != nil {
		return p.peerID
	}
	return ""
}

// Local is the in-process bridge, nil for signaling alone.
func (s *Server) Local() *LocalBridge { return s.local }

// bridgeDown moves every meeting off a bridge that stopped.
func (s *Server) bridgeDown(id, why string) {
	if !s.focus.markDown(id) {
		return
	}
	s.log.Warn("bridge down", "bridge", id, "reason", why)
	s.mu.Lock()
	ms := make([]*meeting, 0, len(s.meetings))
	for _, m := range s.meetings {
		ms = append(ms, m)
	}
	s.mu.Unlock()
	for _, m := range ms {
		m.bridgeDown(id)
	}
}

// Close ends every session.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	var ms []*meeting
	for _, m := range s.meetings {
		ms = append(ms, m)
	}
	s.mu.Unlock()
	for _, m := range ms {
		m.closeAll(websocket.CloseServiceRestart, "server restarting")
	}
}
