package signaling

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
)

const (
	writeWait   = 5 * time.Second
	pongWait    = 40 * time.Second
	pingEvery   = 15 * time.Second
	sendBacklog = 256 // messages queued to a slow socket before it is dropped
	// maxStrikes bounds how many bad or over-rate messages a socket may send before it is
	// closed: a buggy client gets errors to debug, a hostile one is cut off.
	maxStrikes = 50
)

// session is one WebSocket. Its reader goroutine (run) handles messages in order; its
// writer goroutine owns the socket's write side. Other goroutines (the meeting's, the
// bridges') reach it only once join has put it in the router and the meeting.
type session struct {
	srv    *Server
	conn   *websocket.Conn
	remote string
	// host is the client's address (remoteHost, or what the forwarding node vouched for)
	// and forwarded says another node forwarded the socket here (forward.go). Set before
	// run, read-only after.
	host      string
	forwarded bool
	// upstream is the owner's socket when this session is forwarded to another node
	// (forward.go). The reader goroutine sets it during the join and writes to it; close
	// reads it under mu.
	upstream *websocket.Conn
	send     sendQueue
	done     chan struct{} // closed when the writer has ended

	closeReq  chan closeError // one close request for the writer
	closeOnce sync.Once
	doneOnce  sync.Once
	closing   atomic.Bool // set when close starts: a join still under way must not enter the meeting
	limiter   *rate.Limiter
	strikes   int // reader goroutine only
	// opened is when the socket was accepted; lockWait is how long the join waited for
	// its meeting's lock (meeting.add). Both for the join's phase timings (jointime.go);
	// set before run and by the reader goroutine's join respectively.
	opened   time.Time
	lockWait time.Duration

	// Written once by join on the reader goroutine, under mu, before the session is
	// handed to the router and the meeting (which publishes them to their goroutines);
	// read-only afterwards. close, which may run on any goroutine during join, reads them
	// under mu. The writer goroutine never reads them.
	log    *slog.Logger
	claims *auth.Claims
	// device is the room device's own id (protocol.Join.Device), set with claims and only
	// for an endpoint's session; never logged or shown to others.
	device  string
	self    protocol.Participant
	meeting *meeting
	// token is the join token's key in Server.tokens while this session counts against
	// it (admitToken); close releases it. Guarded by mu.
	token *tokenKey

	// bridge and peerID say where the endpoint's media terminates. join sets them (as
	// above); after that they change only when the endpoint is moved off a failed bridge
	// (migrate), under meeting.mu.
	bridge     Bridge
	peerID     ids.PeerID
	generation int
	// placed mirrors bridge and peerID for where, which the bridge's event goroutines
	// call for every offer and candidate of the peer: they read it without the
	// meeting's lock, which under a join storm each of them otherwise queued for behind
	// the joins (the mutex profile's largest signaling entry). Stored by setPlace
	// wherever bridge and peerID are written.
	placed atomic.Pointer[placement]
	// view is the page's last view (view.go), sent again to a bridge it moves to;
	// guarded by meeting.mu.
	view   *protocol.BridgeView
	joined time.Time
	// joinDigest identifies the join token (resume.go), and adopted is what the peer
	// adopted on a resume publishes and receives (nil for a new peer); both set by join
	// before the session enters the meeting, read-only after.
	joinDigest string
	adopted    *protocol.PeerState
	// sendOnly keeps the endpoint out of subscriptions (a WHIP encoder); set before
	// the join, read-only after.
	sendOnly bool
	// receiveOnly marks a viewer (WHEP) that publishes nothing: its offers are refused
	// and its token's caps are the viewers' (tokenlimits.go). Set before it joins.
	receiveOnly bool
	// slots: the endpoint asked to receive in slots (Join.Slots, protocol/slots.go). Set
	// by join before its peer is made, read-only after.
	slots bool
	// layerCap is the simulcast layer cap of the endpoint's video subscriptions, plus
	// one (0: none), set by Attached.SetMaxVideoLayer; read when its peer is made anew.
	layerCap atomic.Int32
	// linkFigures, when set (Attached: a gateway's endpoint), reports the endpoint's own
	// link, which monitoring shows instead of the bridge's figures of its peer (the
	// gateway's connection). Set before the join, read-only after.
	linkFigures func() (GatewayLink, bool)

	mu           sync.Mutex // guards trackSources and muted, and join's writes (above)
	trackSources map[string]protocol.Source
	muted        map[protocol.Source]bool
}

// placement is where an endpoint's media terminates: its bridge and its peer there.
type placement struct {
	bridge Bridge
	peer   ids.PeerID
}

// setPlace writes bridge and peerID and publishes them to where. Callers hold the lock
// the fields' writes need (s.mu during the join, meeting.mu after it).
func (s *session) setPlace(b Bridge, peer ids.PeerID) {
	s.bridge, s.peerID = b, peer
	s.placed.Store(&placement{bridge: b, peer: peer})
}

func newSession(srv *Server, conn *websocket.Conn, remote string) *session {
	return &session{
		srv: srv, conn: conn, remote: remote, opened: time.Now(),
		log:          srv.log.With("remote", remote),
		send:         sendQueue{ready: make(chan struct{}, 1)},
		done:         make(chan struct{}),
		closeReq:     make(chan closeError, 1),
		limiter:      rate.NewLimiter(rate.Limit(srv.cfg.MessageRate), srv.cfg.MessageBurst),
		trackSources: map[string]protocol.Source{},
		muted:        map[protocol.Source]bool{},
	}
}

type handler func(s *session, env protocol.Envelope) error

// handlers maps each kind a client may send to its handler (one function per kind rather
// than one long switch; see STYLE.md anti-pattern 2).
var handlers map[protocol.Kind]handler

func init() {
	handlers = map[protocol.Kind]handler{
		protocol.KindJoin:        (*session).handleJoin,
		protocol.KindOffer:       decoded((*session).handleOffer),
		protocol.KindAnswer:      decoded((*session).handleAnswer),
		protocol.KindCandidate:   decoded((*session).handleCandidate),
		protocol.KindMute:        decoded((*session).handleMute),
		protocol.KindLeave:       (*session).handleLeave,
		protocol.KindPing:        (*session).handlePing,
		protocol.KindFloorAction: decoded((*session).handleFloorAction),
		protocol.KindPin:         decoded((*session).handlePin),
		protocol.KindView:        decoded((*session).handleView),
	}
}

// requestError is an error the client caused; it is sent back with its code.
type requestError struct {
	code string
	err  error
}

func (e *requestError) Error() string { return e.err.Error() }
func (e *requestError) Unwrap() error { return e.err }

func clientErr(code string, format string, args ...any) error {
	return &requestError{code: code, err: fmt.Errorf(format, args...)}
}

// decodeData decodes env's data into v for a handler: a message that does not decode
// answers bad_message, an SDP that does not parse bad_sdp.
func decodeData(env protocol.Envelope, v any) error {
	err := protocol.DecodeData(env, v)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, protocol.ErrBadSDP):
		return clientErr(protocol.CodeBadSDP, "%v", err)
	}
	return clientErr(protocol.CodeBadMessage, "%v", err)
}

// decoded adapts the handler of a message whose data is a T: the data is decoded (see
// decodeData) before fn sees it.
func decoded[T any](fn func(s *session, env protocol.Envelope, msg T) error) handler {
	return func(s *session, env protocol.Envelope) error {
		var msg T
		if err := decodeData(env, &msg); err != nil {
			return err
		}
		return fn(s, env, msg)
	}
}

// errLeave ends the session cleanly after a leave message.
var errLeave = errors.New("leave")

func (s *session) run() {
	if m := s.srv.cfg.Metrics; m != nil {
		m.Sessions.Inc()
		defer m.Sessions.Dec()
	}
	go s.writeLoop(s.log)
	defer s.close(websocket.CloseNormalClosure, "")

	s.conn.SetReadLimit(protocol.MaxMessageBytes)
	_ = s.conn.SetReadDeadline(time.Now().Add(s.srv.cfg.JoinTimeout))
	s.conn.SetPongHandler(func(string) error {
		// Runs on this (the reader) goroutine, which also sets s.claims. A pong proves
		// the peer alive, not that it may stay: before the join it moves no deadline.
		if s.claims == nil {
			return nil
		}
		return s.conn.SetReadDeadline(time.Now().Add(pongWait))
	})
	for {
		typ, data, err := s.conn.ReadMessage()
		if err != nil {
			s.readFailed(err)
			return
		}
		if s.claims != nil {
			_ = s.conn.SetReadDeadline(time.Now().Add(pongWait))
		}
		if typ != websocket.TextMessage {
			s.reject("", protocol.CodeBadMessage, "binary messages are not accepted")
			continue
		}
		if s.upstream != nil { // a forwarder: the owner answers, and limits, what follows
			if !s.forwardToOwner(data) {
				return
			}
			continue
		}
		if !s.limiter.Allow() {
			s.reject("", protocol.CodeRateLimited, "too many messages")
			if s.strike() {
				s.close(protocol.CloseRateLimited, "too many messages")
				return
			}
			continue
		}
		joined := s.claims != nil
		err = s.handle(data)
		if !joined && s.claims != nil {
			// The join's deadline (JoinTimeout from the upgrade) gives way to the idle
			// one: a client may send nothing more after joining (one that resumed keeps
			// its connections and has nothing to negotiate), and pongs keep it alive.
			_ = s.conn.SetReadDeadline(time.Now().Add(pongWait))
		}
		if err != nil {
			if errors.Is(err, errLeave) {
				return
			}
			var ce *closeError
			if errors.As(err, &ce) {
				s.close(ce.code, ce.reason)
				return
			}
			if s.strike() {
				s.close(protocol.CloseRateLimited, "too many bad messages")
				return
			}
		}
	}
}

func (s *session) strike() bool {
	s.strikes++
	return s.strikes > maxStrikes
}

func (s *session) readFailed(err error) {
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce) && ce.Code == websocket.CloseMessageTooBig:
		s.log.Warn("message too large; closing", "limit", protocol.MaxMessageBytes)
	case errors.Is(err, websocket.ErrReadLimit):
		s.log.Warn("message too large; closing", "limit", protocol.MaxMessageBytes)
		s.close(websocket.CloseMessageTooBig, "message too large")
	case s.claims == nil && isTimeout(err):
		s.log.Info("no join in time; closing")
		s.close(protocol.CloseJoinTimeout, "join timeout")
	default:
		s.log.Debug("socket read ended", "err", err)
	}
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// closeError asks run to close the socket with a code after replying.
type closeError struct {
	code   int
	reason string
}

func (e *closeError) Error() string { return e.reason }

// handle decodes and dispatches one message. Client mistakes are answered with an error
// message and returned so the caller can count them.
func (s *session) handle(data []byte) error {
	env, err := protocol.Decode(data)
	if err != nil {
		code := protocol.CodeBadMessage
		if errors.Is(err, protocol.ErrVersion) {
			code = protocol.CodeUnsupportedVersion
		}
		s.reject(env.ID, code, err.Error())
		return err
	}
	s.srv.cfg.Metrics.message(env.Kind)
	h, ok := handlers[env.Kind]
	if !ok {
		s.reject(env.ID, protocol.CodeUnknownKind, fmt.Sprintf("unknown message type %q", env.Kind))
		return fmt.Errorf("unknown kind %q", env.Kind)
	}
	if env.Kind != protocol.KindJoin && env.Kind != protocol.KindPing && s.claims == nil {
		s.reject(env.ID, protocol.CodeNotJoined, "send join first")
		return errors.New("not joined")
	}
	err = h(s, env)
	if err == nil || errors.Is(err, errLeave) {
		return err
	}
	var ce *closeError
	if errors.As(err, &ce) {
		return err
	}
	var re *requestError
	if errors.As(err, &re) {
		s.reject(env.ID, re.code, re.Error())
		return err
	}
	s.log.Error("request failed", "type", env.Kind, "err", err)
	s.reject(env.ID, protocol.CodeInternal, "internal error")
	return nil // our fault, not a strike against the client
}

func (s *session) reject(id, code, msg string) {
	s.srv.cfg.Metrics.errorReply(code)
	s.log.Debug("error reply", "code", code, "msg", msg)
	s.reply(protocol.KindError, id, protocol.Error{Code: code, Message: msg})
}

// reply queues a message. A socket that cannot keep up is closed rather than allowed to
// grow memory without bound.
func (s *session) reply(kind protocol.Kind, id string, data any) {
	b, err := protocol.Encode(kind, id, data)
	if err != nil {
		s.log.Error("encode reply", "type", kind, "err", err)
		return
	}
	s.enqueue(b)
}

// enqueue queues an encoded message for the writer.
func (s *session) enqueue(b []byte) {
	select {
	case <-s.done:
		return
	default:
	}
	if !s.send.push(b) {
		s.log.Warn("send queue full; closing slow socket")
		go s.close(websocket.ClosePolicyViolation, "too slow")
	}
}

// sendQueue holds the messages queued for a session's writer, up to sendBacklog, and its
// pending roster news (roster.go). A channel of sendBacklog was 6 KiB per endpoint for the
// whole meeting (issue 11), where a few messages wait at a time: the slice grows with what
// waits, and is let go when the writer has taken everything.
type sendQueue struct {
	mu    sync.Mutex // guards everything below
	items []queued
	// roster is the news not yet sealed into items; rosterArmed says the writer will be
	// woken to send it (rosterDue: it is time), rosterSent when the last set went out.
	roster      rosterSet
	rosterArmed bool
	rosterDue   bool
	rosterSent  time.Time
	ready       chan struct{} // capacity 1: a token while there may be something to take
}

// queued is one message, or roster news sealed at its place in the order.
type queued struct {
	b      []byte
	roster *rosterBatch
}

// push queues b after any pending roster news (b may refer to a participant in it);
// false if sendBacklog messages already wait.
func (q *sendQueue) push(b []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) >= sendBacklog {
		return false
	}
	q.seal()
	q.items = append(q.items, queued{b: b})
	q.wake()
	return true
}

// wake leaves the writer a token. Caller holds q.mu.
func (q *sendQueue) wake() {
	select {
	case q.ready <- struct{}{}:
	default: // a token is there already
	}
}

// take returns everything queued, oldest first, with the pending roster news last if it
// is time to send them, and empties the queue. Roster news are encoded here, on the
// writer's goroutine, not under the meeting's lock where they were made.
func (q *sendQueue) take() [][]byte {
	q.mu.Lock()
	items := q.items
	q.items = nil
	if q.rosterDue {
		q.rosterDue, q.rosterArmed = false, false
		if !q.roster.empty() {
			items = append(items, queued{roster: q.roster.batch()})
			q.rosterSent = time.Now()
		}
	}
	q.mu.Unlock()
	out := make([][]byte, 0, len(items))
	for _, it := range items {
		if it.roster != nil {
			out = it.roster.encode(out)
		} else {
			out = append(out, it.b)
		}
	}
	return out
}

// writeLoop is the only writer of the socket. A close request makes it flush what is
// queued (so a client sees the error that caused the close), send the close frame and
// close the connection, which also ends the reader. When a write fails it just closes
// the connection: the reader then fails too and closes the session on its own goroutine.
// log is the session's logger as it was at start (join replaces the session's).
func (s *session) writeLoop(log *slog.Logger) {
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	defer s.markDone()
	defer func() { _ = s.conn.Close() }()
	write := func(b []byte) error {
		_ = s.conn.SetWriteDeadline(time.Now().Add(writeWait))
		return s.conn.WriteMessage(websocket.TextMessage, b)
	}
	for {
		select {
		case <-s.send.ready:
			for _, b := range s.send.take() {
				if err := write(b); err != nil {
					log.Debug("socket write", "err", err)
					return
				}
			}
		case <-ping.C:
			if err := s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				log.Debug("socket ping", "err", err)
				return
			}
		case req := <-s.closeReq:
			for _, b := range s.send.take() {
				if write(b) != nil {
					break
				}
			}
			if req.code != websocket.CloseAbnormalClosure {
				_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(req.code, req.reason),
					time.Now().Add(writeWait))
			}
			return
		}
	}
}

func (s *session) markDone() { s.doneOnce.Do(func() { close(s.done) }) }

// close leaves the meeting, closes the bridge peer and asks the writer to close the
// socket with code. Safe to call more than once and from any goroutine.
func (s *session) close(code int, reason string) {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		s.releaseToken()
		s.mu.Lock()
		m, joined, log, up := s.meeting, s.claims != nil, s.log, s.upstream
		s.mu.Unlock()
		if up != nil {
			s.srv.forwardEnded(s)
			closeUpstream(up)
		}
		if m != nil {
			m.remove(s)
			m.mu.Lock()
			b, peer := s.bridge, s.peerID
			m.mu.Unlock()
			// nil: no bridge would take the endpoint. A peer that another session adopted
			// (the endpoint resumed) is that session's now.
			if b != nil && s.srv.router.clear(b, peer, s) {
				if a, ok := b.(adopter); ok && s.handOver(code) {
					if err := a.ReleasePeer(peer); err != nil {
						log.Debug("release peer", "err", err)
					}
				} else if err := b.ClosePeer(peer); err != nil {
					log.Debug("close peer", "err", err)
				}
			}
		}
		s.closeReq <- closeError{code: code, reason: reason} // buffered: never blocks
		if joined {
			log.Info("left", "code", code, "reason", reason)
		}
	})
}
