package signaling

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
)

// Attached is an endpoint that speaks the signaling protocol in process instead of over
// /ws: the HTTP gateways (WHIP ingest) drive one per resource. It is an ordinary session
// without a socket, so it joins, is placed on a bridge, publishes, appears in the roll
// call and leaves through exactly the code a browser's session does.
type Attached struct {
	s       *session
	onEvent func(protocol.Envelope)
	onClose func(code int, reason string)

	reqMu sync.Mutex // serialises Request: the handlers expect one reader, as on a socket
	seq   int        // guarded by reqMu

	mu      sync.Mutex // guards waiters
	waiters map[string]chan protocol.Envelope
}

// AttachOptions configures Attach.
type AttachOptions struct {
	// Remote names the client in logs (its address).
	Remote string
	// SendOnly keeps the endpoint out of every subscription: an encoder that only
	// publishes is not sent the meeting's streams.
	SendOnly bool
	// ReceiveOnly marks a viewer (WHEP) that never publishes: its publisher offers are
	// refused, and its join token's caps are the viewers' (Config.MaxViewersPerToken), so
	// one watch link serves a room of screens.
	ReceiveOnly bool
	// OnEvent receives the messages that answer no request (offers, participant
	// events); it runs on the endpoint's delivery goroutine and must not block.
	OnEvent func(protocol.Envelope)
	// OnClose is called once when the endpoint has left (a leave, a failed media
	// connection, the meeting ending, the server closing).
	OnClose func(code int, reason string)
	// Link, when set, reports the endpoint's own link as its gateway measures it (a SIP
	// room's RTP with the gateway); monitoring shows it in place of the bridge's figures
	// of the gateway's connection, which are a loopback hop. ok is false before the
	// gateway has figures. It is called with signaling's locks held: it must not block
	// nor call signaling.
	Link func() (l GatewayLink, ok bool)
}

// GatewayLink is an attached endpoint's own link as its gateway measures it.
type GatewayLink struct {
	// Up is what the endpoint sends the gateway (loss and jitter measured on arrival),
	// Down what the gateway sends it (from its receiver reports, with the round trip).
	Up, Down protocol.LinkFigures
	// SIP describes the call, for the console.
	SIP *protocol.SIPCall
}

// Attach creates an endpoint driven by Request; it joins with a join request.
func (srv *Server) Attach(opts AttachOptions) *Attached {
	s := newSession(srv, nil, opts.Remote)
	s.sendOnly, s.receiveOnly, s.linkFigures = opts.SendOnly, opts.ReceiveOnly, opts.Link
	a := &Attached{s: s, onEvent: opts.OnEvent, onClose: opts.OnClose, waiters: map[string]chan protocol.Envelope{}}
	if m := srv.cfg.Metrics; m != nil {
		m.Sessions.Inc()
	}
	go a.deliver()
	return a
}

// ErrDetached is returned by Request once the endpoint has left.
var ErrDetached = errors.New("signaling: endpoint has left")

// Request handles one message as the session would a socket's, and returns the reply that
// carries its id: the answer, the joined message, or an error message (protocol.Error).
func (a *Attached) Request(ctx context.Context, kind protocol.Kind, data any) (protocol.Envelope, error) {
	a.reqMu.Lock()
	defer a.reqMu.Unlock()
	a.seq++
	id := "r" + strconv.Itoa(a.seq)
	b, err := protocol.Encode(kind, id, data)
	if err != nil {
		return protocol.Envelope{}, err
	}
	ch := make(chan protocol.Envelope, 1)
	a.mu.Lock()
	a.waiters[id] = ch
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.waiters, id)
		a.mu.Unlock()
	}()
	err = a.s.handle(b)
	var ce *closeError
	if errors.As(err, &ce) {
		// As run does: the reply (an error message) is queued first, then the close.
		defer a.s.close(ce.code, ce.reason)
	}
	select {
	case env := <-ch:
		return env, nil
	case <-a.s.done:
		select { // the reply may have been delivered just before the close
		case env := <-ch:
			return env, nil
		default:
			return protocol.Envelope{}, ErrDetached
		}
	case <-ctx.Done():
		return protocol.Envelope{}, fmt.Errorf("signaling request %s: %w", kind, ctx.Err())
	}
}

// Send handles one message that has no reply on success (an answer, a candidate, a
// mute), and returns the error the session found in it.
func (a *Attached) Send(kind protocol.Kind, data any) error {
	a.reqMu.Lock()
	defer a.reqMu.Unlock()
	b, err := protocol.Encode(kind, "", data)
	if err != nil {
		return err
	}
	err = a.s.handle(b)
	var ce *closeError
	if errors.As(err, &ce) {
		a.s.close(ce.code, ce.reason)
	}
	return err
}

// Participant is the endpoint as others see it (zero before the join).
func (a *Attached) Participant() protocol.Participant {
	a.s.mu.Lock()
	joined := a.s.claims != nil
	a.s.mu.Unlock()
	if !joined {
		return protocol.Participant{}
	}
	return a.s.participant()
}

// Close leaves the meeting and closes the endpoint's peer; OnClose follows.
func (a *Attached) Close() { a.s.close(websocket.CloseNormalClosure, "left") }

// Done is closed once the endpoint has left.
func (a *Attached) Done() <-chan struct{} { return a.s.done }

// deliver is the attached session's writer: it hands replies to their requests and the
// rest to OnEvent, and on the close request ends the session.
func (a *Attached) deliver() {
	defer func() {
		if m := a.s.srv.cfg.Metrics; m != nil {
			m.Sessions.Dec()
		}
	}()
	route := func(b []byte) {
		env, err := protocol.Decode(b)
		if err != nil {
			a.s.log.Error("attached endpoint: undecodable reply", "err", err)
			return
		}
		a.mu.Lock()
		ch := a.waiters[env.ID]
		a.mu.Unlock()
		switch {
		case env.ID != "" && ch != nil:
			ch <- env // buffered, and one reply per request
		case a.onEvent != nil:
			a.onEvent(env)
		}
	}
	for {
		select {
		case <-a.s.send.ready:
			for _, b := range a.s.send.take() {
				route(b)
			}
		case req := <-a.s.closeReq:
			for _, b := range a.s.send.take() {
				route(b)
			}
			a.s.markDone()
			if a.onClose != nil {
				a.onClose(req.code, req.reason)
			}
			return
		}
	}
}

// SetMaxVideoLayer caps the simulcast layer of every video the endpoint is sent, now and
// later, at layer (0 the low layer … 2 the top): a room codec behind the SIP gateway that
// decodes no larger picture. The cap follows the endpoint to another bridge.
func (a *Attached) SetMaxVideoLayer(layer int) {
	s := a.s
	s.layerCap.Store(int32(layer) + 1)
	s.mu.Lock()
	m := s.meeting
	s.mu.Unlock()
	if m == nil {
		return // not in the meeting yet: its peer takes the cap when made (placePeer)
	}
	b, peer := s.where()
	if b == nil {
		return
	}
	m.ops.push(func() { s.applyLayerCap(b, peer) })
}

// applyPeerOptions tells b, for the endpoint's new peer, what the endpoint asked of its
// subscriptions: slots, a layer cap. Before the peer's subscriptions (placePeer, migrate).
func (s *session) applyPeerOptions(b Bridge, peer ids.PeerID) {
	if s.slots {
		if err := b.UseSlots(protocol.BridgeSlots{Peer: peer}); err != nil {
			s.log.Warn("slots", "bridge", b.ID(), "err", err)
		}
	}
	s.applyLayerCap(b, peer)
}

// applyLayerCap tells b the endpoint's layer cap for peer, if it has one. Any goroutine
// but the meeting's lock holder's: it may wait on a remote bridge's socket.
func (s *session) applyLayerCap(b Bridge, peer ids.PeerID) {
	c := s.layerCap.Load()
	if c == 0 {
		return
	}
	if err := b.CapLayers(protocol.BridgeLayerCap{Peer: peer, MaxLayer: int(c - 1)}); err != nil {
		s.log.Debug("layer cap", "bridge", b.ID(), "err", err)
	}
}
