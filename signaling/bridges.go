package signaling

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/cau-project/cau/bridge"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/sfu"
	"github.com/pion/webrtc/v4"
)

// Bridge is a bridge signaling drives: the one in this process, or a `cau bridge` process
// over the control socket. Peers and streams are named by strings (see package bridge).
type Bridge interface {
	ID() string
	// Site is the site whose subtree the bridge serves.
	Site() string
	CreatePeer(peer string) error
	// Offer applies a remote offer to a peer's publisher side and returns the answer.
	Offer(ctx context.Context, peer, sdp string, keys map[string]string) (string, error)
	Answer(peer, sdp string) error
	AddCandidate(peer string, t protocol.Target, c protocol.ICECandidate) error
	Subscribe(peer, key, trackID, streamID string) error
	Unsubscribe(peer, key string) error
	ClosePeer(peer string) error
}

// peerOwner receives the events of one peer on one bridge: a session (an endpoint's
// peer) or a relay link (each of its two ends).
type peerOwner interface {
	peerOffer(b Bridge, peer, sdp string)
	peerCandidate(b Bridge, peer string, t protocol.Target, c protocol.ICECandidate)
	trackPublished(b Bridge, peer, key, kind string)
	trackEnded(b Bridge, peer, key string)
	peerFailed(b Bridge, peer, reason string)
}

// router delivers bridge events to the owner of the peer they concern.
type router struct {
	mu     sync.Mutex // guards owners
	owners map[ownerKey]peerOwner
}

type ownerKey struct{ bridge, peer string }

func (r *router) set(b Bridge, peer string, o peerOwner) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o == nil {
		delete(r.owners, ownerKey{b.ID(), peer})
		return
	}
	r.owners[ownerKey{b.ID(), peer}] = o
}

func (r *router) owner(b Bridge, peer string) peerOwner {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.owners[ownerKey{b.ID(), peer}]
}

// events builds the callbacks a bridge uses to report to the router.
func (r *router) events(b Bridge) bridge.Events {
	return bridge.Events{
		Offer: func(peer, sdp string) {
			if o := r.owner(b, peer); o != nil {
				o.peerOffer(b, peer, sdp)
			}
		},
		Candidate: func(peer string, t sfu.Target, c webrtc.ICECandidateInit) {
			if o := r.owner(b, peer); o != nil {
				o.peerCandidate(b, peer, protocol.Target(t.String()), fromPion(c))
			}
		},
		Track: func(peer, key, kind string) {
			if o := r.owner(b, peer); o != nil {
				o.trackPublished(b, peer, key, kind)
			}
		},
		TrackEnded: func(peer, key string) {
			if o := r.owner(b, peer); o != nil {
				o.trackEnded(b, peer, key)
			}
		},
		Failed: func(peer, reason string) {
			if o := r.owner(b, peer); o != nil {
				o.peerFailed(b, peer, reason)
			}
		},
	}
}

// LocalBridge is the bridge in signaling's own process (`cau serve`).
type LocalBridge struct {
	id, site string
	agent    *bridge.Agent
}

// ID implements Bridge.
func (l *LocalBridge) ID() string { return l.id }

// Site implements Bridge.
func (l *LocalBridge) Site() string { return l.site }

// Agent is the agent driving the local sfu (tests read its counters).
func (l *LocalBridge) Agent() *bridge.Agent { return l.agent }

// CreatePeer implements Bridge.
func (l *LocalBridge) CreatePeer(peer string) error { return l.agent.CreatePeer(peer) }

// Offer implements Bridge.
func (l *LocalBridge) Offer(_ context.Context, peer, sdp string, keys map[string]string) (string, error) {
	return l.agent.Offer(peer, sdp, keys)
}

// Answer implements Bridge.
func (l *LocalBridge) Answer(peer, sdp string) error { return l.agent.Answer(peer, sdp) }

// AddCandidate implements Bridge.
func (l *LocalBridge) AddCandidate(peer string, t protocol.Target, c protocol.ICECandidate) error {
	return l.agent.AddCandidate(peer, sfuTarget(t), toPion(c))
}

// Subscribe implements Bridge.
func (l *LocalBridge) Subscribe(peer, key, trackID, streamID string) error {
	return l.agent.Subscribe(peer, key, trackID, streamID)
}

// Unsubscribe implements Bridge.
func (l *LocalBridge) Unsubscribe(peer, key string) error { return l.agent.Unsubscribe(peer, key) }

// ClosePeer implements Bridge.
func (l *LocalBridge) ClosePeer(peer string) error { return l.agent.ClosePeer(peer) }

func sfuTarget(t protocol.Target) sfu.Target {
	if t == protocol.TargetSubscriber {
		return sfu.Subscriber
	}
	return sfu.Publisher
}

// Ancestry returns a site's ancestors, nearest first (the parent, its parent, … the
// root). Signaling uses it to place endpoints and to join bridges into a tree; package
// rooms provides it from the site registry.
type Ancestry func(site string) []string

// focus knows the bridges and where they sit in the site tree. It places endpoints on
// the bridge nearest their site and gives each bridge its parent bridge. Because every
// bridge's parent is the bridge of a strict ancestor site, following parents always ends
// at the root: the bridges form a tree, so relay paths cannot loop.
type focus struct {
	ancestry Ancestry

	mu      sync.Mutex // guards bridges
	bridges map[string]*bridgeEntry
	root    Bridge // the bridge of last resort (the local one, if any)
}

type bridgeEntry struct {
	b        Bridge
	up       bool
	lastSeen time.Time
	load     protocol.BridgeHeartbeat
}

var errNoBridge = errors.New("no bridge is available")

func (f *focus) add(b Bridge) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bridges[b.ID()] = &bridgeEntry{b: b, up: true, lastSeen: time.Now()}
}

func (f *focus) markDown(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.bridges[id]
	if e == nil || !e.up {
		return false
	}
	e.up = false
	delete(f.bridges, id)
	return true
}

// bridgeAt returns a live bridge serving exactly site, preferring the least loaded.
// Caller holds f.mu.
func (f *focus) bridgeAt(site string) Bridge {
	var best *bridgeEntry
	for _, e := range f.bridges {
		if e.up && e.b.Site() == site && (best == nil || e.load.Peers < best.load.Peers ||
			(e.load.Peers == best.load.Peers && e.b.ID() < best.b.ID())) {
			best = e
		}
	}
	if best == nil {
		return nil
	}
	return best.b
}

// place returns the bridge for an endpoint at site: its own site's, else the nearest
// ancestor's, else the root bridge.
func (f *focus) place(site string) (Bridge, error) {
	chain := append([]string{site}, f.ancestors(site)...)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range chain {
		if b := f.bridgeAt(s); b != nil {
			return b, nil
		}
	}
	if f.root != nil {
		if e := f.bridges[f.root.ID()]; e != nil && e.up {
			return f.root, nil
		}
	}
	for _, e := range f.sorted() {
		return e.b, nil // no tree knowledge: any live bridge beats none
	}
	return nil, errNoBridge
}

// parent returns the bridge above b: the bridge of b's nearest ancestor site that has one,
// else the root bridge; nil for the top bridge.
func (f *focus) parent(b Bridge) Bridge {
	anc := f.ancestors(b.Site())
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range anc {
		if p := f.bridgeAt(s); p != nil {
			return p
		}
	}
	if f.root != nil && b.ID() != f.root.ID() {
		if e := f.bridges[f.root.ID()]; e != nil && e.up {
			return f.root
		}
	}
	return nil
}

func (f *focus) ancestors(site string) []string {
	if f.ancestry == nil {
		return nil
	}
	return f.ancestry(site)
}

// sorted lists live bridges by id (deterministic choices). Caller holds f.mu.
func (f *focus) sorted() []*bridgeEntry {
	out := make([]*bridgeEntry, 0, len(f.bridges))
	for _, e := range f.bridges {
		if e.up {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].b.ID() < out[j].b.ID() })
	return out
}

// Bridges lists the live bridges: id → site.
func (s *Server) Bridges() map[string]string {
	s.focus.mu.Lock()
	defer s.focus.mu.Unlock()
	out := map[string]string{}
	for id, e := range s.focus.bridges {
		out[id] = e.b.Site()
	}
	return out
}

// RelayStats returns each live bridge's relay peers' counters: bridge id → stats.
// Remote bridges report theirs every second; the local bridge's are read now.
func (s *Server) RelayStats() map[string][]protocol.RelayStat {
	out := map[string][]protocol.RelayStat{}
	s.focus.mu.Lock()
	for id, e := range s.focus.bridges {
		if e.up && e.b != Bridge(s.local) {
			out[id] = e.load.Relays
		}
	}
	s.focus.mu.Unlock()
	if s.local != nil {
		out[s.local.ID()] = s.local.agent.RelayStats()
	}
	return out
}
