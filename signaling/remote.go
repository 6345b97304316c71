package signaling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/bridge"
	"github.com/cau-project/cau/protocol"
	"github.com/gorilla/websocket"
)

// bridgeTimeout is how long a bridge may stay silent (no heartbeat) before it is marked
// down and its endpoints are moved. Heartbeats come every second.
const bridgeTimeout = 3 * time.Second

// errRemoteBadSDP marks a remote bridge's refusal of a description.
var errRemoteBadSDP = errors.New("bridge refused the session description")

// remoteBridge is a `cau bridge` process connected to /bridge.
type remoteBridge struct {
	srv      *Server
	conn     *websocket.Conn
	id, site string
	log      *slog.Logger
	ev       bridge.Events
	send     chan []byte
	done     chan struct{}
	once     sync.Once
	nextID   atomic.Int64
	lastSeen atomic.Int64 // unix nanos of the last message

	mu      sync.Mutex // guards pending
	pending map[string]chan protocol.Envelope
}

// ServeBridge handles /bridge: a bridge process registers and is then driven over the
// socket. The request must carry a bridge token (Authorization: Bearer …).
func (s *Server) ServeBridge(w http.ResponseWriter, r *http.Request) {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	claims, err := s.cfg.Keys.Verify(tok)
	if err != nil || claims.Role != auth.RoleBridge {
		s.log.Warn("bridge refused", "remote", r.RemoteAddr, "err", err)
		http.Error(w, "a bridge token is required", http.StatusUnauthorized)
		return
	}
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	// Heartbeats carry every endpoint's link figures: a bridge with hundreds of endpoints
	// sends more than an endpoint may. Bridges are authenticated; 8 MiB still bounds them.
	conn.SetReadLimit(8 << 20)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := conn.ReadMessage()
	if err != nil {
		_ = conn.Close()
		return
	}
	var reg protocol.BridgeRegister
	env, err := protocol.Decode(data)
	if err == nil && env.Kind != protocol.KindBridgeRegister {
		err = fmt.Errorf("first message is %s, want register", env.Kind)
	}
	if err == nil {
		err = protocol.DecodeData(env, &reg)
	}
	if err == nil && (reg.ID == "" || reg.Site == "" || reg.ID == "local") {
		err = errors.New("register needs an id (not \"local\") and a site")
	}
	if err != nil {
		b, _ := protocol.Encode(protocol.KindError, env.ID, protocol.Error{Code: protocol.CodeBadMessage, Message: err.Error()})
		_ = conn.WriteMessage(websocket.TextMessage, b)
		_ = conn.Close()
		return
	}
	rb := &remoteBridge{srv: s, conn: conn, id: reg.ID, site: reg.Site, send: make(chan []byte, 1024),
		done: make(chan struct{}), pending: map[string]chan protocol.Envelope{},
		log: s.log.With("bridge", reg.ID, "site", reg.Site)}
	rb.ev = s.router.events(rb)
	rb.lastSeen.Store(time.Now().UnixNano())
	s.focus.mu.Lock()
	if e := s.focus.bridges[reg.ID]; e != nil && e.up {
		s.focus.mu.Unlock()
		b, _ := protocol.Encode(protocol.KindError, env.ID, protocol.Error{Code: protocol.CodeForbidden, Message: "a bridge with this id is registered"})
		_ = conn.WriteMessage(websocket.TextMessage, b)
		_ = conn.Close()
		return
	}
	s.focus.mu.Unlock()
	s.focus.add(rb)
	go rb.writeLoop()
	rb.push(protocol.KindBridgeRegistered, env.ID, nil)
	rb.log.Info("bridge registered", "remote", r.RemoteAddr)
	go rb.watchdog()
	rb.readLoop()
}

// ID implements Bridge.
func (rb *remoteBridge) ID() string { return rb.id }

// Site implements Bridge.
func (rb *remoteBridge) Site() string { return rb.site }

func (rb *remoteBridge) readLoop() {
	defer rb.shutdown("connection closed")
	for {
		_ = rb.conn.SetReadDeadline(time.Now().Add(2 * bridgeTimeout))
		_, data, err := rb.conn.ReadMessage()
		if err != nil {
			return
		}
		rb.lastSeen.Store(time.Now().UnixNano())
		env, err := protocol.Decode(data)
		if err != nil {
			rb.log.Warn("bad message from bridge", "err", err)
			continue
		}
		rb.dispatch(env)
	}
}

func (rb *remoteBridge) dispatch(env protocol.Envelope) {
	if env.ID != "" {
		rb.mu.Lock()
		ch := rb.pending[env.ID]
		rb.mu.Unlock()
		if ch != nil {
			ch <- env
			return
		}
	}
	switch env.Kind {
	case protocol.KindBridgeHeartbeat:
		var hb protocol.BridgeHeartbeat
		if protocol.DecodeData(env, &hb) == nil {
			rb.srv.focus.mu.Lock()
			if e := rb.srv.focus.bridges[rb.id]; e != nil {
				e.load, e.lastSeen = hb, time.Now()
			}
			rb.srv.focus.mu.Unlock()
		}
	case protocol.KindPeerOffer:
		var m protocol.PeerSDP
		if protocol.DecodeData(env, &m) == nil {
			rb.ev.Offer(m.Peer, m.SDP)
		}
	case protocol.KindPeerCandidate:
		var m protocol.PeerICE
		if protocol.DecodeData(env, &m) == nil {
			rb.ev.Candidate(m.Peer, sfuTarget(m.Target), toPion(m.Candidate))
		}
	case protocol.KindTrackPublished:
		var m protocol.TrackEvent
		if protocol.DecodeData(env, &m) == nil {
			rb.ev.Track(m.Peer, m.Key, m.Kind)
		}
	case protocol.KindTrackEnded:
		var m protocol.TrackEvent
		if protocol.DecodeData(env, &m) == nil {
			rb.ev.TrackEnded(m.Peer, m.Key)
		}
	case protocol.KindPeerFailed:
		var m protocol.PeerFailed
		if protocol.DecodeData(env, &m) == nil {
			rb.ev.Failed(m.Peer, m.Reason)
		}
	case protocol.KindError:
		var e protocol.Error
		_ = protocol.DecodeData(env, &e)
		rb.log.Warn("bridge reported an error", "code", e.Code, "msg", e.Message)
	}
}

// watchdog marks the bridge down when its heartbeats stop (a hung process or a cut link;
// a killed process is noticed sooner, when its socket closes).
func (rb *remoteBridge) watchdog() {
	t := time.NewTicker(bridgeTimeout / 3)
	defer t.Stop()
	for {
		select {
		case <-rb.done:
			return
		case <-t.C:
			if time.Since(time.Unix(0, rb.lastSeen.Load())) > bridgeTimeout {
				rb.shutdown("heartbeat timeout")
				return
			}
		}
	}
}

func (rb *remoteBridge) writeLoop() {
	// Pings keep an idle control socket alive through NATs and let the bridge notice a
	// dead signaling server.
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	for {
		select {
		case <-rb.done:
			return
		case <-ping.C:
			if err := rb.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				rb.shutdown("ping failed")
				return
			}
		case b := <-rb.send:
			_ = rb.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := rb.conn.WriteMessage(websocket.TextMessage, b); err != nil {
				rb.shutdown("write failed")
				return
			}
		}
	}
}

func (rb *remoteBridge) shutdown(why string) {
	rb.once.Do(func() {
		close(rb.done)
		_ = rb.conn.Close()
		rb.srv.bridgeDown(rb.id, why)
	})
}

// push queues a message; a bridge that cannot keep up is cut off and its endpoints moved.
func (rb *remoteBridge) push(kind protocol.Kind, id string, data any) error {
	b, err := protocol.Encode(kind, id, data)
	if err != nil {
		return err
	}
	select {
	case <-rb.done:
		return fmt.Errorf("bridge %s: %w", rb.id, errNoBridge)
	case rb.send <- b:
		return nil
	default:
		go rb.shutdown("send queue full")
		return fmt.Errorf("bridge %s: send queue full", rb.id)
	}
}

// CreatePeer implements Bridge.
func (rb *remoteBridge) CreatePeer(peer string) error {
	return rb.push(protocol.KindCreatePeer, "", protocol.PeerRef{Peer: peer})
}

// Offer implements Bridge: a request that waits for the bridge's answer.
func (rb *remoteBridge) Offer(ctx context.Context, peer, sdp string, keys map[string]string) (string, error) {
	id := strconv.FormatInt(rb.nextID.Add(1), 10)
	ch := make(chan protocol.Envelope, 1)
	rb.mu.Lock()
	rb.pending[id] = ch
	rb.mu.Unlock()
	defer func() {
		rb.mu.Lock()
		delete(rb.pending, id)
		rb.mu.Unlock()
	}()
	if err := rb.push(protocol.KindPeerSDP, id, protocol.PeerSDP{Peer: peer, Type: "offer", SDP: sdp, Keys: keys}); err != nil {
		return "", err
	}
	select {
	case env := <-ch:
		if env.Kind == protocol.KindError {
			var e protocol.Error
			_ = protocol.DecodeData(env, &e)
			if e.Code == protocol.CodeBadSDP {
				return "", fmt.Errorf("%w: %s", errRemoteBadSDP, e.Message)
			}
			return "", fmt.Errorf("bridge %s: %s: %s", rb.id, e.Code, e.Message)
		}
		var a protocol.Answer
		if err := protocol.DecodeData(env, &a); err != nil {
			return "", fmt.Errorf("bridge %s answer: %w", rb.id, err)
		}
		return a.SDP, nil
	case <-rb.done:
		return "", fmt.Errorf("bridge %s: %w", rb.id, errNoBridge)
	case <-ctx.Done():
		return "", fmt.Errorf("bridge %s offer: %w", rb.id, ctx.Err())
	}
}

// Answer implements Bridge.
func (rb *remoteBridge) Answer(peer, sdp string) error {
	return rb.push(protocol.KindPeerSDP, "", protocol.PeerSDP{Peer: peer, Type: "answer", SDP: sdp})
}

// AddCandidate implements Bridge.
func (rb *remoteBridge) AddCandidate(peer string, t protocol.Target, c protocol.ICECandidate) error {
	return rb.push(protocol.KindAddICE, "", protocol.PeerICE{Peer: peer, Target: t, Candidate: c})
}

// Subscribe implements Bridge.
func (rb *remoteBridge) Subscribe(peer, key, trackID, streamID string) error {
	return rb.push(protocol.KindSubscribe, "", protocol.Subscription{Peer: peer, Key: key, TrackID: trackID, StreamID: streamID})
}

// Unsubscribe implements Bridge.
func (rb *remoteBridge) Unsubscribe(peer, key string) error {
	return rb.push(protocol.KindUnsubscribe, "", protocol.Subscription{Peer: peer, Key: key})
}

// ClosePeer implements Bridge.
func (rb *remoteBridge) ClosePeer(peer string) error {
	return rb.push(protocol.KindClosePeer, "", protocol.PeerRef{Peer: peer})
}
