// Package signaling is Cầu's WebSocket signaling: it authenticates endpoints, keeps the
// live membership of each meeting, places endpoints on bridges, and has every published
// stream forwarded to the other endpoints (package relayplan decides how). The wire
// format is package protocol; bridges are driven through the Bridge interface, in process
// (package bridge) or over the control socket (package bridge/control).
//
// Locks, in the only order they may be taken (a goroutine holding one may take those
// after it, never one before):
//
//	Server.mu → meeting.mu → session.mu, fifo.mu (writeQueue, opQueue) → focus.mu → router.mu
//
// No lock of this package is held across network or disk I/O or a bridge call: store and
// presence writes go through the meeting's writer goroutine, bridge commands through its
// op queue, and a meeting is created (Redis reads) outside Server.mu.
package signaling

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/bridge"
	"github.com/cau-project/cau/bridge/control"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/presence"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/rooms"
)

// Config configures a Server.
type Config struct {
	// Bridge is the media engine in this process (an *sfu.Bridge); nil for signaling alone
	// (`cau signal`), which then uses only registered bridge processes.
	Bridge bridge.Engine
	// Site is the site the local bridge serves (normally the root of the tree).
	Site ids.SiteID
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
	// ICEServers returns the TURN servers (with fresh credentials) an endpoint placed on
	// the bridge with this id uses; nil, or a nil result, sends none.
	ICEServers func(bridge ids.BridgeID, participant ids.ParticipantID) []protocol.ICEServer
	// MessageRate and MessageBurst bound each socket's message rate. Defaults 50/s, 100.
	MessageRate  float64
	MessageBurst int
	// MaxParticipants caps a meeting's participants on this node (join refused with
	// protocol.CodeCapacity); 0 means DefaultMaxParticipants, -1 no cap.
	MaxParticipants int
	// SlotsFrom is the size, in sites, from which a meeting's endpoints that leave it to
	// the server (Join.SlotsAuto) receive in slots: a scheduled meeting listing that many
	// sites, or any with that many participants at the join. 0 means
	// DefaultSlotsFrom, -1 never.
	SlotsFrom int
	// MaxSocketsPerAddr caps the open /ws sockets from one IP address (HTTP 429); 0 means
	// DefaultMaxSocketsPerAddr, -1 no cap.
	MaxSocketsPerAddr int
	// MaxSessionsPerToken caps the sessions one join token holds at once on this node
	// (join refused with protocol.CodeCapacity); 0 means DefaultMaxSessionsPerToken, -1
	// no cap. MaxJoinsPerTokenPerMinute caps its join attempts per minute (refused with
	// protocol.CodeRateLimited); 0 means DefaultMaxJoinsPerTokenPerMinute, -1 no cap.
	MaxSessionsPerToken, MaxJoinsPerTokenPerMinute int
	// MaxViewersPerToken caps the receive-only sessions (WHEP viewers) one token holds
	// at once on this node (and their joins per minute, at twice that), apart from the
	// caps above; 0 means DefaultMaxViewersPerToken, -1 no cap.
	MaxViewersPerToken int
	// BridgeTimeout is how long a registered bridge may be silent (no beat, no message)
	// before it is declared down and its endpoints are moved; 0 means
	// control.DefaultTimeout (500 ms). Raise it on a box so loaded that a live bridge
	// can go that long unscheduled; above control.HardTimeout (3 s) it raises that too.
	BridgeTimeout time.Duration
	// RollCallGrace is how long a node that took a meeting over waits before it closes
	// the roll-call spans of endpoints that did not come back; 0 means
	// DefaultRollCallGrace. Only with Leases.
	RollCallGrace time.Duration
	// Leases makes this node one of several sharing meetings (issue 16): a meeting runs on
	// the node holding its lease, and joins that reach another node are forwarded there
	// (owner.go, forward.go). Nil: one node, every meeting local. With Leases, Presence
	// is not needed (all of a meeting's participants are on its owner) and is not used.
	Leases Leases
}

// Server serves /ws. It owns the live meetings.
type Server struct {
	cfg      Config
	log      *slog.Logger
	upgrader websocket.Upgrader

	router  router
	focus   focus
	addrs   addrLimiter
	tokens  tokenLimiter
	local   *LocalBridge
	control *control.Server
	owners  *ownership // nil without Config.Leases

	// tree is the site registry: cfg.Tree, then what SetTree installs.
	tree      atomic.Pointer[rooms.Tree]
	recording recordingStates // meetings being recorded (recording.go)

	mu       sync.Mutex // guards meetings and closed; first in the lock order
	meetings map[ids.MeetingID]*meeting
	forwards map[*session]struct{} // sessions forwarded to other nodes (forward.go)
	closed   bool
	// writers counts the meetings' write goroutines (and late writes): Close waits for
	// them. Add is called only while the server is open or by a live meeting.
	writers sync.WaitGroup
}

// Presence shares who is connected to each meeting with the other signaling nodes
// (package presence keeps it in Redis). Nil means one node.
type Presence interface {
	// Announce says p joined (or changed) on this node; endpoint is its roll-call
	// endpoint (rooms.AttendanceEvent.Endpoint).
	Announce(ctx context.Context, meeting ids.MeetingID, p protocol.Participant, endpoint string) error
	// Withdraw says participant id left this node.
	Withdraw(ctx context.Context, meeting ids.MeetingID, id ids.ParticipantID) error
	// Follow delivers the other nodes' joins, changes and leaves in the meeting until ctx
	// ends, and returns who is on the other nodes now. An event with Lost set is a
	// participant whose node crashed, delivered so to one node only: that node records
	// it disconnected in the roll call.
	Follow(ctx context.Context, meeting ids.MeetingID, fn func(presence.Event)) ([]presence.Event, error)
}

var _ Presence = (*presence.Redis)(nil)

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
	if cfg.MaxParticipants == 0 {
		cfg.MaxParticipants = DefaultMaxParticipants
	}
	if cfg.MaxSocketsPerAddr == 0 {
		cfg.MaxSocketsPerAddr = DefaultMaxSocketsPerAddr
	}
	if cfg.MaxSessionsPerToken == 0 {
		cfg.MaxSessionsPerToken = DefaultMaxSessionsPerToken
	}
	if cfg.MaxJoinsPerTokenPerMinute == 0 {
		cfg.MaxJoinsPerTokenPerMinute = DefaultMaxJoinsPerTokenPerMinute
	}
	if cfg.MaxViewersPerToken == 0 {
		cfg.MaxViewersPerToken = DefaultMaxViewersPerToken
	}
	if cfg.Leases != nil {
		cfg.Presence = nil // every participant of a meeting is on its owner
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "signaling"), meetings: map[ids.MeetingID]*meeting{},
		forwards: map[*session]struct{}{}}
	if cfg.Leases != nil {
		s.owners = newOwnership(s)
	}
	s.router.owners = map[ownerKey]peerOwner{}
	s.router.speaker = s.speakerReport
	if cfg.Ancestry != nil {
		s.focus.ancestry.Store(&cfg.Ancestry)
	}
	s.tree.Store(cfg.Tree)
	s.focus.bridges = map[ids.BridgeID]*bridgeEntry{}
	var known func(ids.SiteID) bool
	if cfg.Tree != nil {
		known = func(site ids.SiteID) bool {
			t := s.tree.Load()
			if t == nil {
				return false
			}
			_, ok := t.Site(string(site))
			return ok
		}
	}
	s.control = control.New(control.Config{Keys: cfg.Keys, Logger: s.log, KnownSite: known, Timeout: cfg.BridgeTimeout,
		Registered: func(b *control.Remote) (bridge.Events, error) {
			if err := s.focus.addNew(b); err != nil {
				return bridge.Events{}, err
			}
			return s.router.events(b), nil
		},
		Heartbeat: func(b *control.Remote, hb protocol.BridgeHeartbeat) { s.focus.heartbeat(b.ID(), hb) },
		Down:      func(b *control.Remote, why string) { s.bridgeDown(b.ID(), why) },
	})
	if cfg.Bridge != nil {
		s.local = &LocalBridge{id: ids.LocalBridge, site: cfg.Site}
		s.local.agent = bridge.NewAgent(cfg.Bridge, s.router.events(s.local), s.log)
		s.focus.root = s.local
		s.focus.add(s.local)
	}
	// Buffer sizes left at 0: the socket reads and writes through the 4 KiB buffers the
	// HTTP server already allocated for the request, instead of 8 KiB more of its own
	// per endpoint for the whole meeting (issue 11). Not a pool of write buffers: the
	// HTTP connection keeps its writer while the handler runs the session (and its reader,
	// which the socket reads through, points back at it), so a pool only adds buffers.
	s.upgrader = websocket.Upgrader{CheckOrigin: s.checkOrigin}
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
	host, forwarded := remoteHost(r), false
	if h, ok := forwardedHost(r, s.cfg.Keys, time.Now()); ok {
		host, forwarded = h, true
	}
	if !s.addrs.acquire(host, s.cfg.MaxSocketsPerAddr) {
		s.log.Warn("socket refused: too many from this address", "remote", host, "limit", s.cfg.MaxSocketsPerAddr)
		s.cfg.Metrics.limited(limitAddrSockets)
		refuseSocket(w)
		return
	}
	defer s.addrs.release(host)
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug("websocket upgrade", "err", err, "remote", r.RemoteAddr)
		return // the upgrader has written the HTTP error
	}
	remote := r.RemoteAddr
	if forwarded {
		remote = host + " via " + r.RemoteAddr
	}
	sess := newSession(s, conn, remote)
	sess.host, sess.forwarded = host, forwarded
	sess.run()
}

// ServeBridge handles /bridge, the control socket `cau bridge` processes register on
// (package bridge/control).
func (s *Server) ServeBridge(w http.ResponseWriter, r *http.Request) { s.control.ServeHTTP(w, r) }

// meetingFor returns the live meeting with id, creating it; sched is the scheduled
// meeting (nil for an ad hoc one). Creating one reads the store and presence (network
// I/O), so it happens outside s.mu: two joins that race to create the same meeting both
// build one, and the loser's is stopped.
func (s *Server) meetingFor(id ids.MeetingID, sched *rooms.Meeting) (*meeting, error) {
	// counted returns the meeting in the map, counting the join in it. Caller holds s.mu.
	counted := func() (*meeting, error) {
		if s.closed {
			return nil, ErrServerClosed
		}
		m := s.meetings[id]
		if m != nil {
			m.joining++
		}
		return m, nil
	}
	s.mu.Lock()
	m, err := counted()
	s.mu.Unlock()
	if m != nil || err != nil {
		return m, err
	}
	fresh := newMeeting(s, id, sched)
	s.mu.Lock()
	m, err = counted()
	if m == nil && err == nil {
		m = fresh
		m.joining++
		s.meetings[id] = m
		m.repairSpansLater()
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.Meetings.Inc()
		}
	}
	s.mu.Unlock()
	if m != fresh {
		fresh.stop()
	}
	return m, err
}

// joinDone ends a join that meetingFor counted in m, whether or not it entered m.
func (s *Server) joinDone(m *meeting) {
	s.mu.Lock()
	m.joining--
	s.mu.Unlock()
	s.dropMeetingIfEmpty(m)
}

// dropMeetingIfEmpty forgets m once its last participant has left and no join is on its
// way in (a join holds the meeting from meetingFor to add).
func (s *Server) dropMeetingIfEmpty(m *meeting) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.meetings[m.id] == m && m.joining == 0 && m.empty() {
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
	m := s.meetings[ids.MeetingID(meetingID)]
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
	m := s.meetings[ids.MeetingID(meetingID)]
	s.mu.Unlock()
	out := map[string]string{}
	if m == nil {
		return out
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, p := range m.participants {
		if p.bridge != nil {
			out[id] = string(p.bridge.ID())
		}
	}
	return out
}

// PeerOf returns the bridge peer of a participant of a live meeting (zero if none).
func (s *Server) PeerOf(meetingID, participantID string) ids.PeerID {
	s.mu.Lock()
	m := s.meetings[ids.MeetingID(meetingID)]
	s.mu.Unlock()
	if m == nil {
		return ids.PeerID{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.participants[participantID]; p != nil {
		return p.peerID
	}
	return ids.PeerID{}
}

// Local is the in-process bridge, nil for signaling alone.
func (s *Server) Local() *LocalBridge { return s.local }

// bridgeDown moves every meeting off a bridge that stopped.
func (s *Server) bridgeDown(id ids.BridgeID, why string) {
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
	fw := make([]*session, 0, len(s.forwards))
	for f := range s.forwards {
		fw = append(fw, f)
	}
	s.mu.Unlock()
	if s.owners != nil {
		// Released first: the clients closed below come back through another node, which
		// can take the meetings over at once instead of waiting for the leases to expire.
		s.owners.close()
	}
	for _, f := range fw {
		f.close(websocket.CloseServiceRestart, "server restarting")
	}
	for _, m := range ms {
		if s.owners != nil {
			m.handOver() // the clients resume on the node that takes the meeting over
		}
		m.closeAll(websocket.CloseServiceRestart, "server restarting")
	}
	// The sessions closed above leave their meetings, which then stop; wait until their
	// roll-call and audit writes are made, so the store can be closed after Close.
	done := make(chan struct{})
	go func() { s.writers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(CloseWriteTimeout):
		s.log.Error("server closed with roll-call or audit writes still pending", "waited", CloseWriteTimeout)
	}
}

// CloseWriteTimeout bounds how long Close waits for the meetings' store writes.
const CloseWriteTimeout = 10 * time.Second

// SetTree installs the site registry after an edit through the REST API (issue 12,
// finding 8): later joins are placed, and bridges admitted, by the new tree, and
// participants get their sites' new names. Bridges already registered keep their place
// in the bridge tree until they register again. Safe from any goroutine.
func (s *Server) SetTree(t *rooms.Tree) {
	s.tree.Store(t)
	if t != nil {
		anc := Ancestry(t.Ancestors)
		s.focus.ancestry.Store(&anc)
	}
}
