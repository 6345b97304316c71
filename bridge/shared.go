package bridge

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
)

// Shared is a bridge process's one Agent, driven by its control connections to several
// signaling nodes (issue 16). Each peer belongs to one connection: the one whose node
// created it or adopted it last. The peer's events go to that connection, and only that
// connection's commands reach the peer, so a node that lost a meeting can no longer
// touch it. A peer whose connection was lost, or whose node released it, is an orphan:
// it keeps forwarding for the grace, until a node adopts it (the meeting's new owner,
// when the endpoint resumes there, or a relay link the new owner reopens) or the grace
// ends and it is closed. Adopting hands the peer over as it is: its ICE, DTLS, tracks and
// subscriptions stay, and media never stops.
type Shared struct {
	agent *Agent
	grace time.Duration
	log   *slog.Logger

	mu      sync.Mutex // guards below; a leaf: never held while calling the agent or a connection
	conns   map[*conn]struct{}
	owners  map[ids.PeerID]*conn        // the connection each owned peer belongs to
	orphans map[ids.PeerID]*orphanTimer // the orphans, each closed when its timer fires
}

// orphanTimer closes an orphan when its grace ends; t is set under Shared.mu.
type orphanTimer struct{ t *time.Timer }

// SharedConfig configures NewShared.
type SharedConfig struct {
	// MaxPeers caps the process's endpoint peers (0: DefaultMaxPeers; -1: no cap); Limits,
	// if not nil, counts the refusals.
	MaxPeers int
	Limits   *LimitMetrics
	// Grace is how long an orphan keeps forwarding before it is closed; 0 closes a lost
	// connection's peers at once.
	Grace  time.Duration
	Logger *slog.Logger
}

// NewShared makes the agent the process's control connections share over engine b.
func NewShared(b Engine, cfg SharedConfig) *Shared {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	sh := &Shared{grace: cfg.Grace, log: log, conns: map[*conn]struct{}{}, owners: map[ids.PeerID]*conn{},
		orphans: map[ids.PeerID]*orphanTimer{}}
	sh.agent = NewAgent(b, sh.events(), log)
	sh.agent.SetMaxPeers(cfg.MaxPeers, cfg.Limits)
	return sh
}

// Agent is the shared agent (tests read its counters).
func (sh *Shared) Agent() *Agent { return sh.agent }

// events routes the agent's events to the connection that owns each peer; an orphan's
// go nowhere (no node drives it). A meeting's speaker selection goes to every connection:
// only the node that runs the meeting has it live, and the others ignore it.
func (sh *Shared) events() Events {
	return Events{
		Offer: func(peer ids.PeerID, sdp string) {
			if c := sh.owner(peer); c != nil {
				c.push(protocol.KindPeerOffer, "", protocol.PeerSDP{Peer: peer, Type: "offer", SDP: sdp})
			}
		},
		Candidate: func(peer ids.PeerID, t protocol.Target, ic protocol.ICECandidate) {
			if c := sh.owner(peer); c != nil {
				c.push(protocol.KindPeerCandidate, "", protocol.PeerICE{Peer: peer, Target: t, Candidate: ic})
			}
		},
		Track: func(peer ids.PeerID, key ids.StreamKey, kind string) {
			if c := sh.owner(peer); c != nil {
				c.push(protocol.KindTrackPublished, "", protocol.TrackEvent{Peer: peer, Key: key, Kind: kind})
			}
		},
		TrackEnded: func(peer ids.PeerID, key ids.StreamKey) {
			if c := sh.owner(peer); c != nil {
				c.push(protocol.KindTrackEnded, "", protocol.TrackEvent{Peer: peer, Key: key})
			}
		},
		Failed: func(peer ids.PeerID, reason string) {
			if c := sh.forget(peer); c != nil {
				c.push(protocol.KindPeerFailed, "", protocol.PeerFailed{Peer: peer, Reason: reason})
			}
		},
		Speaker: func(meeting ids.MeetingID, dominant ids.ParticipantID, lastN []ids.ParticipantID) {
			for _, c := range sh.connections() {
				c.push(protocol.KindBridgeSpeaker, "", protocol.BridgeSpeaker{Meeting: meeting, Dominant: dominant, LastN: lastN})
			}
		},
		PublishLayers: func(peer ids.PeerID, key ids.StreamKey, active []string) {
			if c := sh.owner(peer); c != nil {
				c.push(protocol.KindBridgePublishLayers, "", protocol.BridgePublishLayers{Peer: peer, Key: key, Active: active})
			}
		},
		Slots: func(peer ids.PeerID, slots []protocol.SlotSource) {
			if c := sh.owner(peer); c != nil {
				c.push(protocol.KindBridgeSlotMap, "", protocol.BridgeSlotMap{Peer: peer, Slots: slots})
			}
		},
	}
}

func (sh *Shared) owner(peer ids.PeerID) *conn {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.owners[peer]
}

func (sh *Shared) connections() []*conn {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return slices.Collect(maps.Keys(sh.conns))
}

// forget drops a peer the agent closed (it failed) and returns the connection it was
// owned by, nil for an orphan.
func (sh *Shared) forget(peer ids.PeerID) *conn {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.owners[peer]
	delete(sh.owners, peer)
	if o := sh.orphans[peer]; o != nil {
		o.t.Stop()
		delete(sh.orphans, peer)
	}
	return c
}

// ErrNotYours refuses a command for a peer that belongs to another signaling node's
// connection (or to none: an orphan must be adopted first).
var ErrNotYours = errors.New("bridge: the peer belongs to another signaling node")

// check says whether c may drive peer.
func (sh *Shared) check(c *conn, peer ids.PeerID) error {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	switch o, owned := sh.owners[peer]; {
	case owned && o == c:
		return nil
	case owned || sh.orphans[peer] != nil:
		return fmt.Errorf("peer %s: %w", peer, ErrNotYours)
	}
	return fmt.Errorf("%w %q", ErrUnknownPeer, peer)
}

// connected starts routing to c.
func (sh *Shared) connected(c *conn) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.conns[c] = struct{}{}
}

// createPeer creates a peer for c. An orphan with the same id (a relay link the new
// owner opens afresh) is closed first: two relay connections between the same two
// bridges under one id cannot both exist. A peer another live connection owns is
// refused.
func (sh *Shared) createPeer(c *conn, peer ids.PeerID) error {
	sh.mu.Lock()
	if o, owned := sh.owners[peer]; owned && o != c {
		sh.mu.Unlock()
		return fmt.Errorf("create peer %s: %w", peer, ErrNotYours)
	}
	o := sh.orphans[peer]
	if o != nil {
		o.t.Stop()
		delete(sh.orphans, peer)
	}
	sh.owners[peer] = c // before the peer exists, so its first events find c
	sh.mu.Unlock()
	if o != nil {
		sh.log.Info("orphan replaced by a new peer", "peer", peer.String())
		_ = sh.agent.ClosePeer(peer)
	}
	err := sh.agent.CreatePeer(peer)
	if err != nil {
		sh.mu.Lock()
		if sh.owners[peer] == c {
			delete(sh.owners, peer)
		}
		sh.mu.Unlock()
	}
	return err
}

// closePeer closes c's peer.
func (sh *Shared) closePeer(c *conn, peer ids.PeerID) error {
	if err := sh.check(c, peer); err != nil {
		return err
	}
	sh.forget(peer)
	return sh.agent.ClosePeer(peer)
}

// adopt hands peer over to c as it is, from an orphan or from another connection (whose
// node lost the meeting: the lease decides, and the new owner's word wins), and returns
// what it publishes and receives.
func (sh *Shared) adopt(c *conn, peer ids.PeerID) (protocol.PeerState, error) {
	st, err := sh.agent.PeerState(peer)
	if err != nil {
		return st, err
	}
	sh.mu.Lock()
	from := sh.owners[peer]
	if o := sh.orphans[peer]; o != nil {
		o.t.Stop()
		delete(sh.orphans, peer)
	}
	sh.owners[peer] = c
	sh.mu.Unlock()
	orphan := "yes"
	if from != nil {
		orphan = "no"
	}
	sh.log.Info("peer adopted", "peer", peer.String(), "orphan", orphan, "tracks", len(st.Published),
		"subscriptions", len(st.Subscriptions))
	return st, nil
}

// release makes c's peer an orphan: its node gives the meeting up, and the node that
// takes it over adopts the peer.
func (sh *Shared) release(c *conn, peer ids.PeerID) error {
	if err := sh.check(c, peer); err != nil {
		return err
	}
	sh.orphan([]ids.PeerID{peer}, c)
	return nil
}

// lost makes the peers of a lost connection orphans (closes them, without a grace or
// when the process stops).
func (sh *Shared) lost(c *conn, stopping bool) {
	sh.mu.Lock()
	delete(sh.conns, c)
	var peers []ids.PeerID
	for p, o := range sh.owners {
		if o == c {
			peers = append(peers, p)
		}
	}
	sh.mu.Unlock()
	if len(peers) == 0 {
		return
	}
	if sh.grace <= 0 || stopping {
		for _, p := range peers {
			if sh.forget(p) == c {
				_ = sh.agent.ClosePeer(p)
			}
		}
		return
	}
	c.log.Info("signaling lost; its peers keep forwarding for a while", "peers", len(peers), "grace", sh.grace)
	sh.orphan(peers, c)
}

// orphan starts the grace of the peers that c owns.
func (sh *Shared) orphan(peers []ids.PeerID, c *conn) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, p := range peers {
		if sh.owners[p] != c {
			continue // adopted meanwhile
		}
		delete(sh.owners, p)
		o := &orphanTimer{}
		o.t = time.AfterFunc(sh.grace, func() { sh.expire(p, o) })
		sh.orphans[p] = o
	}
}

// expire closes an orphan whose grace ended, unless it was adopted meanwhile.
func (sh *Shared) expire(p ids.PeerID, o *orphanTimer) {
	sh.mu.Lock()
	ours := sh.orphans[p] == o
	if ours {
		delete(sh.orphans, p)
	}
	sh.mu.Unlock()
	if ours {
		sh.log.Info("orphan closed: nobody adopted it in time", "peer", p.String())
		_ = sh.agent.ClosePeer(p)
	}
}

// PeerState is what a peer publishes and receives here: the answer to adopt_peer.
func (a *Agent) PeerState(id ids.PeerID) (protocol.PeerState, error) {
	if _, err := a.peer(id); err != nil {
		return protocol.PeerState{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var st protocol.PeerState
	for key, s := range a.streams {
		if s.peer == id {
			st.Published = append(st.Published, protocol.TrackEvent{Peer: id, Key: key, Kind: s.up.Kind().String()})
		}
	}
	for sk, sub := range a.subs {
		if sk.peer == id {
			st.Subscriptions = append(st.Subscriptions, protocol.Subscription{Peer: id, Key: sk.key, TrackID: sub.trackID,
				StreamID: sub.streamID, Meeting: a.meetingOf[sk.key]})
		}
	}
	return st, nil
}
