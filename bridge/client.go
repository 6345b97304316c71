package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/internal/tick"
	"github.com/cau-project/cau/protocol"
)

// ClientConfig configures a bridge process's connection to signaling.
type ClientConfig struct {
	// SignalURL is signaling's control socket, e.g. ws://10.0.0.1:7880/bridge.
	SignalURL string
	// Token is a JWT with role bridge.
	Token string
	// ID names the bridge; Site is the site whose subtree it serves.
	ID     ids.BridgeID
	Site   ids.SiteID
	Bridge Engine
	Logger *slog.Logger
	// MaxPeers caps the endpoints on this bridge (0: DefaultMaxPeers; -1: no cap); over
	// it the bridge refuses them and signaling places them elsewhere. Limits, if not
	// nil, counts the refusals. Grace is how long the peers of a lost connection keep
	// forwarding before they are closed: a signaling node that died leaves its meetings'
	// media flowing while its endpoints come back through another node, which adopts
	// their peers (issue 16). 0 closes them at once. All three apply when Shared is nil.
	MaxPeers int
	Limits   *LimitMetrics
	Grace    time.Duration
	// Shared, one per bridge process, is the agent its connections to several signaling
	// nodes share, so that a peer can pass from one node to another (shared.go); nil
	// makes one for this connection alone, from Bridge, MaxPeers, Limits and Grace.
	Shared *Shared
}

// Run keeps the bridge registered with signaling until ctx ends, reconnecting with
// backoff when the socket drops. The peers of a lost socket are orphans: they forward on
// for the grace, for the node that takes their meetings over to adopt, and are closed
// after it.
func Run(ctx context.Context, cfg ClientConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "bridge", "bridge", string(cfg.ID), "site", string(cfg.Site))
	if cfg.Shared == nil {
		cfg.Shared = NewShared(cfg.Bridge, SharedConfig{MaxPeers: cfg.MaxPeers, Limits: cfg.Limits, Grace: cfg.Grace, Logger: log})
	}
	backoff := 500 * time.Millisecond
	for {
		start := time.Now()
		err := serveOnce(ctx, cfg, log)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > 10*time.Second {
			backoff = 500 * time.Millisecond
		}
		log.Warn("signaling connection lost; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// conn is one registered session with signaling. Its writes go through out (sender.go).
type conn struct {
	out *sender
	log *slog.Logger
}

// push queues a message for signaling; it never blocks.
func (c *conn) push(kind protocol.Kind, id string, data any) {
	b, err := protocol.Encode(kind, id, data)
	if err != nil {
		c.log.Error("encode", "type", kind, "err", err)
		return
	}
	c.out.push(b, kind == protocol.KindBridgeHeartbeat)
}

func serveOnce(ctx context.Context, cfg ClientConfig, log *slog.Logger) error {
	hdr := http.Header{"Authorization": {"Bearer " + cfg.Token}}
	ws, resp, err := websocket.DefaultDialer.DialContext(ctx, cfg.SignalURL, hdr)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("dial %s: %w (HTTP %d)", cfg.SignalURL, err, resp.StatusCode)
		}
		return fmt.Errorf("dial %s: %w", cfg.SignalURL, err)
	}
	_ = resp.Body.Close()
	c := &conn{out: newSender(ws, log), log: log}
	defer ws.Close()
	wctx, stopWriter := context.WithCancel(ctx)
	defer stopWriter()
	go c.out.run(wctx)
	ws.SetReadLimit(protocol.MaxControlMessageBytes)

	sh := cfg.Shared
	agent := sh.agent
	defer func() { sh.lost(c, ctx.Err() != nil) }()

	c.push(protocol.KindBridgeRegister, "reg", protocol.BridgeRegister{ID: cfg.ID, Site: cfg.Site,
		Capacity: max(agent.MaxPeers(), 0), BeatMillis: int(BeatInterval / time.Millisecond)})
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := ws.ReadMessage()
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	env, err := protocol.DecodeControl(data)
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	if env.Kind != protocol.KindBridgeRegistered {
		var e protocol.Error
		_ = protocol.DecodeData(env, &e)
		return fmt.Errorf("register refused: %s: %s", e.Code, e.Message)
	}
	log.Info("registered with signaling", "url", cfg.SignalURL)
	sh.connected(c)

	go tick.Every(wctx.Done(), time.Second, func(time.Time) {
		p, up, down := agent.Load()
		c.push(protocol.KindBridgeHeartbeat, "", protocol.BridgeHeartbeat{Peers: p, UpTracks: up, DownTracks: down, Full: agent.Full(),
			Relays: agent.RelayStats(), Endpoints: agent.PeerStats()})
	})
	go func() {
		<-ctx.Done()
		_ = ws.Close()
	}()

	// Signaling pings every 15 s; silence for twice that means it is gone.
	const readWait = 35 * time.Second
	ws.SetPingHandler(func(data string) error {
		_ = ws.SetReadDeadline(time.Now().Add(readWait))
		c.out.answerPing(data)
		return nil
	})
	for {
		_ = ws.SetReadDeadline(time.Now().Add(readWait))
		_, data, err := ws.ReadMessage()
		if err != nil {
			return err
		}
		env, err := protocol.DecodeControl(data)
		if err != nil {
			log.Warn("bad command", "err", err)
			continue
		}
		if err := execute(c, sh, env); err != nil {
			log.Warn("command failed", "type", env.Kind, "err", err)
			code := protocol.CodeBadMessage
			switch {
			case errors.Is(err, ErrBadSDP):
				code = protocol.CodeBadSDP
			case errors.Is(err, ErrBridgeFull):
				code = protocol.CodeCapacity
			case errors.Is(err, ErrUnknownPeer), errors.Is(err, ErrNotYours):
				code = protocol.CodeUnknownPeer
			}
			c.push(protocol.KindError, env.ID, protocol.Error{Code: code, Message: err.Error()})
		}
	}
}

// BeatInterval is how often a bridge pings signaling on its control socket: its
// liveness, which signaling watches with a sub-second timeout (control.DefaultTimeout).
// A ping is a few bytes that the writer (sender.run) sends between messages, so it goes
// out however long the heartbeat (every endpoint's figures) takes to build.
const BeatInterval = 100 * time.Millisecond

// execute runs one command from signaling on the shared agent, for a peer that c owns
// (shared.go). A command carries what an endpoint sent (an SDP, a candidate); whatever
// it is, its failure is reported to signaling as an error reply and the control socket
// stays: a panic in the media stack on hostile input is recovered here, so one endpoint
// cannot take the bridge's others down.
func execute(c *conn, sh *Shared, env protocol.Envelope) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s command panicked: %v", ErrBadSDP, env.Kind, r)
		}
	}()
	a := sh.agent
	switch env.Kind {
	case protocol.KindCreatePeer:
		return onPeer(c, sh, env, false, func(m protocol.PeerRef) error { return createPeer(c, sh, env.ID, m.Peer) })
	case protocol.KindAdoptPeer:
		return onPeer(c, sh, env, false, func(m protocol.PeerRef) error {
			st, err := sh.adopt(c, m.Peer)
			if err == nil {
				c.push(protocol.KindAnswer, env.ID, st)
			}
			return err
		})
	case protocol.KindReleasePeer:
		return onPeer(c, sh, env, false, func(m protocol.PeerRef) error { return sh.release(c, m.Peer) })
	case protocol.KindClosePeer:
		return onPeer(c, sh, env, false, func(m protocol.PeerRef) error { return sh.closePeer(c, m.Peer) })
	case protocol.KindPeerSDP:
		return onPeer(c, sh, env, true, func(m protocol.PeerSDP) error {
			if m.Type == "answer" {
				return a.Answer(m.Peer, m.SDP)
			}
			answer, err := a.Offer(m.Peer, m.SDP, m.Keys)
			if err == nil {
				c.push(protocol.KindAnswer, env.ID, protocol.Answer{SDP: answer})
			}
			return err
		})
	case protocol.KindAddICE:
		return onPeer(c, sh, env, true, func(m protocol.PeerICE) error { return a.AddCandidate(m.Peer, m.Target, m.Candidate) })
	case protocol.KindSubscribe:
		return onPeer(c, sh, env, true, func(m protocol.Subscription) error {
			return a.Subscribe(m.Peer, m.Key, m.TrackID, m.StreamID, m.Meeting)
		})
	case protocol.KindUnsubscribe:
		return onPeer(c, sh, env, true, func(m protocol.Subscription) error { return a.Unsubscribe(m.Peer, m.Key) })
	case protocol.KindBridgeLayerCap:
		return onPeer(c, sh, env, true, func(m protocol.BridgeLayerCap) error {
			a.CapLayers(m.Peer, m.MaxLayer)
			return nil
		})
	case protocol.KindBridgeSlots:
		return onPeer(c, sh, env, true, func(m protocol.BridgeSlots) error { return a.UseSlots(m.Peer) })
	case protocol.KindBridgePin:
		var m protocol.BridgePin
		if err := protocol.DecodeData(env, &m); err != nil {
			return err
		}
		a.ApplyPin(m)
		return nil
	case protocol.KindBridgeView:
		return onPeer(c, sh, env, true, func(m protocol.BridgeView) error {
			a.SetView(m)
			return nil
		})
	}
	return fmt.Errorf("unknown command %q", env.Kind)
}

// peerCommand is the data of a command about one peer, which it names.
type peerCommand interface {
	PeerID() ids.PeerID
}

// onPeer decodes a command about one peer and runs it; owned commands run only for a
// peer that c owns.
func onPeer[T peerCommand](c *conn, sh *Shared, env protocol.Envelope, owned bool, run func(T) error) error {
	var m T
	if err := protocol.DecodeData(env, &m); err != nil {
		return err
	}
	if owned {
		if err := sh.check(c, m.PeerID()); err != nil {
			return err
		}
	}
	return run(m)
}

// createPeer runs create_peer. A request with an id waits for the outcome: it is
// acknowledged with an empty answer, or fails with an error reply (code capacity when the
// bridge is full). One without an id (signaling did not wait) that the full bridge
// refuses is reported as a peer_failed with FullReason, so the endpoint is moved.
func createPeer(c *conn, sh *Shared, reqID string, peer ids.PeerID) error {
	err := sh.createPeer(c, peer)
	switch {
	case err == nil && reqID != "":
		c.push(protocol.KindAnswer, reqID, nil)
	case errors.Is(err, ErrBridgeFull) && reqID == "":
		c.push(protocol.KindPeerFailed, "", protocol.PeerFailed{Peer: peer, Reason: FullReason})
		return nil
	}
	return err
}
