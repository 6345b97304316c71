package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/ids"
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
	// nil, counts the refusals.
	MaxPeers int
	Limits   *LimitMetrics
	// Grace is how long the peers of a lost connection keep forwarding before they are
	// closed: a signaling node that died leaves its meetings' media flowing while its
	// endpoints come back through another node (issue 16). 0 closes them at once.
	Grace time.Duration
	// Orphans, shared by a process's connections to several signaling nodes, holds the
	// peers kept for Grace; nil makes one for this connection alone.
	Orphans *Orphans
	// Peers, shared by a process's connections, counts its endpoint peers against
	// MaxPeers: the cap is the bridge's, however many nodes it registers with. Nil
	// makes one for this connection alone.
	Peers *PeerCount
}

// Run keeps the bridge registered with signaling until ctx ends, reconnecting with
// backoff when the socket drops. Peers do not survive a reconnect: signaling has moved
// their endpoints meanwhile; they are closed at once, or after cfg.Grace.
func Run(ctx context.Context, cfg ClientConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "bridge", "bridge", string(cfg.ID), "site", string(cfg.Site))
	if cfg.Orphans == nil {
		cfg.Orphans = NewOrphans()
	}
	if cfg.Peers == nil {
		cfg.Peers = NewPeerCount()
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

// conn is one registered session with signaling.
type conn struct {
	ws      *websocket.Conn
	log     *slog.Logger
	writeMu sync.Mutex
}

func (c *conn) push(kind protocol.Kind, id string, data any) {
	b, err := protocol.Encode(kind, id, data)
	if err != nil {
		c.log.Error("encode", "type", kind, "err", err)
		return
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		c.log.Debug("write to signaling", "err", err)
		_ = c.ws.Close()
	}
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
	c := &conn{ws: ws, log: log}
	defer ws.Close()
	ws.SetReadLimit(protocol.MaxControlMessageBytes)

	agent := NewAgent(cfg.Bridge, Events{
		Offer: func(peer ids.PeerID, sdp string) {
			c.push(protocol.KindPeerOffer, "", protocol.PeerSDP{Peer: peer, Type: "offer", SDP: sdp})
		},
		Candidate: func(peer ids.PeerID, t protocol.Target, ic protocol.ICECandidate) {
			c.push(protocol.KindPeerCandidate, "", protocol.PeerICE{Peer: peer, Target: t, Candidate: ic})
		},
		Track: func(peer ids.PeerID, key ids.StreamKey, kind string) {
			c.push(protocol.KindTrackPublished, "", protocol.TrackEvent{Peer: peer, Key: key, Kind: kind})
		},
		TrackEnded: func(peer ids.PeerID, key ids.StreamKey) {
			c.push(protocol.KindTrackEnded, "", protocol.TrackEvent{Peer: peer, Key: key})
		},
		Failed: func(peer ids.PeerID, reason string) {
			c.push(protocol.KindPeerFailed, "", protocol.PeerFailed{Peer: peer, Reason: reason})
		},
		Speaker: func(meeting ids.MeetingID, dominant ids.ParticipantID, lastN []ids.ParticipantID) {
			c.push(protocol.KindBridgeSpeaker, "", protocol.BridgeSpeaker{Meeting: meeting, Dominant: dominant, LastN: lastN})
		},
	}, log)
	agent.SetMaxPeers(cfg.MaxPeers, cfg.Limits)
	agent.SharePeerCount(cfg.Peers)
	defer func() {
		peers := agent.Peers()
		if cfg.Grace <= 0 || ctx.Err() != nil || len(peers) == 0 {
			for _, id := range peers {
				_ = agent.ClosePeer(id)
			}
			return
		}
		log.Info("signaling lost; its peers keep forwarding for a while", "peers", len(peers), "grace", cfg.Grace)
		cfg.Orphans.keep(agent, peers, cfg.Grace)
	}()

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

	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	go beat(hbCtx, ws)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-hbCtx.Done():
				return
			case <-t.C:
				p, up, down := agent.Load()
				c.push(protocol.KindBridgeHeartbeat, "", protocol.BridgeHeartbeat{Peers: p, UpTracks: up, DownTracks: down, Full: agent.Full(),
					Relays: agent.RelayStats(), Endpoints: agent.PeerStats()})
			}
		}
	}()
	go func() {
		<-ctx.Done()
		_ = ws.Close()
	}()

	// Signaling pings every 15 s; silence for twice that means it is gone.
	const readWait = 35 * time.Second
	ws.SetPingHandler(func(data string) error {
		_ = ws.SetReadDeadline(time.Now().Add(readWait))
		c.writeMu.Lock()
		defer c.writeMu.Unlock()
		return ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
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
		if env.Kind == protocol.KindCreatePeer {
			var m protocol.PeerRef
			if protocol.DecodeData(env, &m) == nil {
				cfg.Orphans.replaced(m.Peer)
			}
		}
		if err := execute(c, agent, env); err != nil {
			log.Warn("command failed", "type", env.Kind, "err", err)
			code := protocol.CodeBadMessage
			switch {
			case errors.Is(err, ErrBadSDP):
				code = protocol.CodeBadSDP
			case errors.Is(err, ErrBridgeFull):
				code = protocol.CodeCapacity
			}
			c.push(protocol.KindError, env.ID, protocol.Error{Code: code, Message: err.Error()})
		}
	}
}

// BeatInterval is how often a bridge pings signaling on its control socket: its
// liveness, which signaling watches with a sub-second timeout (control.DefaultTimeout).
// A ping is a few bytes on its own goroutine, so it goes out however long the heartbeat
// (every endpoint's figures) takes to build.
const BeatInterval = 100 * time.Millisecond

// beat pings signaling every BeatInterval until ctx ends. A failed ping is left to the
// reader, which sees the socket fail.
func beat(ctx context.Context, ws *websocket.Conn) {
	t := time.NewTicker(BeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// WriteControl may run beside the writes under writeMu (gorilla allows it).
			_ = ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(BeatInterval))
		}
	}
}

// execute runs one command from signaling on the agent. A command carries what an
// endpoint sent (an SDP, a candidate); whatever it is, its failure is reported to
// signaling as an error reply and the control socket stays: a panic in the media stack on
// hostile input is recovered here, so one endpoint cannot take the bridge's others down.
func execute(c *conn, a *Agent, env protocol.Envelope) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s command panicked: %v", ErrBadSDP, env.Kind, r)
		}
	}()
	switch env.Kind {
	case protocol.KindCreatePeer:
		var m protocol.PeerRef
		if err := protocol.DecodeData(env, &m); err != nil {
			return err
		}
		return createPeer(c, a, env.ID, m.Peer)
	case protocol.KindPeerSDP:
		var m protocol.PeerSDP
		if err := protocol.DecodeData(env, &m); err != nil {
			return err
		}
		if m.Type == "answer" {
			return a.Answer(m.Peer, m.SDP)
		}
		answer, err := a.Offer(m.Peer, m.SDP, m.Keys)
		if err != nil {
			return err
		}
		c.push(protocol.KindAnswer, env.ID, protocol.Answer{SDP: answer})
		return nil
	case protocol.KindAddICE:
		var m protocol.PeerICE
		if err := protocol.DecodeData(env, &m); err != nil {
			return err
		}
		return a.AddCandidate(m.Peer, m.Target, m.Candidate)
	case protocol.KindSubscribe:
		var m protocol.Subscription
		if err := protocol.DecodeData(env, &m); err != nil {
			return err
		}
		return a.Subscribe(m.Peer, m.Key, m.TrackID, m.StreamID, m.Meeting)
	case protocol.KindUnsubscribe:
		var m protocol.Subscription
		if err := protocol.DecodeData(env, &m); err != nil {
			return err
		}
		return a.Unsubscribe(m.Peer, m.Key)
	case protocol.KindClosePeer:
		var m protocol.PeerRef
		if err := protocol.DecodeData(env, &m); err != nil {
			return err
		}
		return a.ClosePeer(m.Peer)
	case protocol.KindBridgePin:
		var m protocol.BridgePin
		if err := protocol.DecodeData(env, &m); err != nil {
			return err
		}
		a.ApplyPin(m)
		return nil
	}
	return fmt.Errorf("unknown command %q", env.Kind)
}

// createPeer runs create_peer. A request with an id waits for the outcome: it is
// acknowledged with an empty answer, or fails with an error reply (code capacity when the
// bridge is full). One without an id (signaling did not wait) that the full bridge
// refuses is reported as a peer_failed with FullReason, so the endpoint is moved.
func createPeer(c *conn, a *Agent, reqID string, peer ids.PeerID) error {
	err := a.CreatePeer(peer)
	switch {
	case err == nil && reqID != "":
		c.push(protocol.KindAnswer, reqID, nil)
	case errors.Is(err, ErrBridgeFull) && reqID == "":
		c.push(protocol.KindPeerFailed, "", protocol.PeerFailed{Peer: peer, Reason: FullReason})
		return nil
	}
	return err
}
