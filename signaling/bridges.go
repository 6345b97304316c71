package signaling

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cau-project/cau/bridge"
	"github.com/cau-project/cau/bridge/control"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
)

// Bridge is a bridge signaling drives: the one in this process (LocalBridge), or a
// `cau bridge` process over the control socket (*control.Remote). It speaks ids and
// protocol types only; no WebRTC type crosses it.
type Bridge interface {
	ID() ids.BridgeID
	// Site is the site whose subtree the bridge serves.
	Site() ids.SiteID
	CreatePeer(peer ids.PeerID) error
	// Offer applies a remote offer to a peer's publisher side and returns the answer.
	Offer(ctx context.Context, peer ids.PeerID, sdp string, keys map[string]ids.StreamKey) (string, error)
	Answer(peer ids.PeerID, sdp string) error
	AddCandidate(peer ids.PeerID, t protocol.Target, c protocol.ICECandidate) error
	// Subscribe forwards key to peer; meeting is the stream's meeting, for its Last-N.
	Subscribe(peer ids.PeerID, key ids.StreamKey, trackID, streamID string, meeting ids.MeetingID) error
	Unsubscribe(peer ids.PeerID, key ids.StreamKey) error
	ClosePeer(peer ids.PeerID) error
	// Pin pins or unpins a participant's sources in a meeting, or on one peer's link.
	Pin(p protocol.BridgePin) error
	// View caps the layers forwarded to a peer per stream (a page's view).
	View(v protocol.BridgeView) error
	// CapLayers caps the simulcast layer of a peer's video subscriptions, now and later.
	CapLayers(c protocol.BridgeLayerCap) error
	// UseSlots makes a peer receive its meeting's cameras and microphones in slots
	// (protocol/slots.go); sent before its subscriptions.
	UseSlots(s protocol.BridgeSlots) error
}

var (
	_ Bridge = (*LocalBridge)(nil)
	_ Bridge = (*control.Remote)(nil)
)

// peerOwner receives the events of one peer on one bridge: a session (an endpoint's
// peer) or a relay link (each of its two ends).
type peerOwner interface {
	peerOffer(b Bridge, peer ids.PeerID, sdp string)
	peerCandidate(b Bridge, peer ids.PeerID, t protocol.Target, c protocol.ICECandidate)
	trackPublished(b Bridge, peer ids.PeerID, key ids.StreamKey, kind string)
	trackEnded(b Bridge, peer ids.PeerID, key ids.StreamKey)
	peerFailed(b Bridge, peer ids.PeerID, reason string)
}

// router delivers bridge events to the owner of the peer they concern. An owner is set
// before its peer is created, so the peer's first event finds it; setting it (under
// router.mu) also publishes the owner's state written before to the bridges' goroutines.
type router struct {
	mu     sync.Mutex // guards owners; taken last (see meeting for the lock order)
	owners map[ownerKey]peerOwner
	// speaker receives the bridges' Last-N selections (Server.speakerReport); set before
	// any bridge is added, read-only after.
	speaker func(b Bridge, meeting ids.MeetingID, dominant ids.ParticipantID, lastN []ids.ParticipantID)
}

type ownerKey struct {
	bridge ids.BridgeID
	peer   ids.PeerID
}

func (r *router) set(b Bridge, peer ids.PeerID, o peerOwner) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o == nil {
		delete(r.owners, ownerKey{b.ID(), peer})
		return
	}
	r.owners[ownerKey{b.ID(), peer}] = o
}

// clear forgets peer's owner if it is still o, and says whether it was: a session whose
// peer another session adopted (a resume) must neither close the peer nor unroute it.
func (r *router) clear(b Bridge, peer ids.PeerID, o peerOwner) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := ownerKey{b.ID(), peer}
	if r.owners[k] != o {
		return false
	}
	delete(r.owners, k)
	return true
}

func (r *router) owner(b Bridge, peer ids.PeerID) peerOwner {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.owners[ownerKey{b.ID(), peer}]
}

// events builds the callbacks a bridge uses to report to the router.
func (r *router) events(b Bridge) bridge.Events {
	return bridge.Events{
		Offer: func(peer ids.PeerID, sdp string) {
			if o := r.owner(b, peer); o != nil {
				o.peerOffer(b, peer, sdp)
			}
		},
		Candidate: func(peer ids.PeerID, t protocol.Target, c protocol.ICECandidate) {
			if o := r.owner(b, peer); o != nil {
				o.peerCandidate(b, peer, t, c)
			}
		},
		Track: func(peer ids.PeerID, key ids.StreamKey, kind string) {
			if o := r.owner(b, peer); o != nil {
				o.trackPublished(b, peer, key, kind)
			}
		},
		TrackEnded: func(peer ids.PeerID, key ids.StreamKey) {
			if o := r.owner(b, peer); o != nil {
				o.trackEnded(b, peer, key)
			}
		},
		Failed: func(peer ids.PeerID, reason string) {
			if o := r.owner(b, peer); o != nil {
				o.peerFailed(b, peer, reason)
			}
		},
		Speaker: func(meeting ids.MeetingID, dominant ids.ParticipantID, lastN []ids.ParticipantID) {
			if r.speaker != nil {
				r.speaker(b, meeting, dominant, lastN)
			}
		},
		PublishLayers: func(peer ids.PeerID, key ids.StreamKey, active []string) {
			if s, ok := r.owner(b, peer).(*session); ok {
				s.publishLayers(key, active)
			}
		},
		Slots: func(peer ids.PeerID, slots []protocol.SlotSource) {
			if s, ok := r.owner(b, peer).(*session); ok {
				s.reply(protocol.KindSlots, "", protocol.Slots{Slots: slots})
			}
		},
	}
}

// LocalBridge is the bridge in signaling's own process (`cau serve`).
type LocalBridge struct {
	id    ids.BridgeID
	site  ids.SiteID
	agent *bridge.Agent
}

// ID implements Bridge.
func (l *LocalBridge) ID() ids.BridgeID { return l.id }

// Site implements Bridge.
func (l *LocalBridge) Site() ids.SiteID { return l.site }

// Agent is the agent driving the local sfu (tests read its counters).
func (l *LocalBridge) Agent() *bridge.Agent { return l.agent }

// CreatePeer implements Bridge.
func (l *LocalBridge) CreatePeer(peer ids.PeerID) error { return l.agent.CreatePeer(peer) }

// Offer implements Bridge.
func (l *LocalBridge) Offer(_ context.Context, peer ids.PeerID, sdp string, keys map[string]ids.StreamKey) (string, error) {
	return l.agent.Offer(peer, sdp, keys)
}

// Answer implements Bridge.
func (l *LocalBridge) Answer(peer ids.PeerID, sdp string) error { return l.agent.Answer(peer, sdp) }

// AddCandidate implements Bridge.
func (l *LocalBridge) AddCandidate(peer ids.PeerID, t protocol.Target, c protocol.ICECandidate) error {
	return l.agent.AddCandidate(peer, t, c)
}

// Subscribe implements Bridge.
func (l *LocalBridge) Subscribe(peer ids.PeerID, key ids.StreamKey, trackID, streamID string, meeting ids.MeetingID) error {
	return l.agent.Subscribe(peer, key, trackID, streamID, meeting)
}

// Unsubscribe implements Bridge.
func (l *LocalBridge) Unsubscribe(peer ids.PeerID, key ids.StreamKey) error {
	return l.agent.Unsubscribe(peer, key)
}

// OfferNow makes the peer's first subscriber offer at once if one is due (firstOfferer).
func (l *LocalBridge) OfferNow(peer ids.PeerID) error { return l.agent.OfferNow(peer) }

// ClosePeer implements Bridge.
func (l *LocalBridge) ClosePeer(peer ids.PeerID) error { return l.agent.ClosePeer(peer) }

// Pin implements Bridge.
func (l *LocalBridge) Pin(p protocol.BridgePin) error {
	l.agent.ApplyPin(p)
	return nil
}

// UseSlots implements Bridge.
func (l *LocalBridge) UseSlots(s protocol.BridgeSlots) error { return l.agent.UseSlots(s.Peer) }

// CapLayers caps the simulcast layers of a peer's video subscriptions.
func (l *LocalBridge) CapLayers(c protocol.BridgeLayerCap) error {
	l.agent.CapLayers(c.Peer, c.MaxLayer)
	return nil
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
	ancestry atomic.Pointer[Ancestry] // nil: every site under the root; SetTree swaps it

	mu      sync.Mutex // guards bridges; taken after meeting.mu, never before
	bridges map[ids.BridgeID]*bridgeEntry
	root    Bridge // the bridge of last resort (the local one, if any)
}

type bridgeEntry struct {
	b        Bridge
	up       bool
	lastSeen time.Time
	load     protocol.BridgeHeartbeat
	// fullUntil: the bridge said it is full (a heartbeat, a refused peer); endpoints
	// are not placed on it before then (bridgecap.go).
	fullUntil time.Time
}

var errNoBridge = errors.New("no bridge is available")

func (f *focus) add(b Bridge) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bridges[b.ID()] = &bridgeEntry{b: b, up: true, lastSeen: time.Now()}
}

// errBridgeTaken refuses a bridge that registers under the id of a live one.
var errBridgeTaken = errors.New("a bridge with this id is registered")

// addNew adds b unless a live bridge has its id.
func (f *focus) addNew(b Bridge) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.bridges[b.ID()]; e != nil && e.up {
		return fmt.Errorf("bridge %s: %w", b.ID(), errBridgeTaken)
	}
	f.bridges[b.ID()] = &bridgeEntry{b: b, up: true, lastSeen: time.Now()}
	return nil
}

// byID returns the live bridge with id, nil if none.
func (f *focus) byID(id ids.BridgeID) Bridge {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.bridges[id]; e != nil && e.up {
		return e.b
	}
	return nil
}

// heartbeat records a bridge's load report.
func (f *focus) heartbeat(id ids.BridgeID, hb protocol.BridgeHeartbeat) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.bridges[id]; e != nil {
		e.load, e.lastSeen = hb, time.Now()
		e.fullUntil = time.Time{}
		if hb.Full {
			e.fullUntil = e.lastSeen.Add(fullHold)
		}
	}
}

func (f *focus) markDown(id ids.BridgeID) bool {
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

// bridgeAt returns a live bridge serving exactly site, preferring the least loaded;
// open (not nil) passes over full bridges, and notes one was passed over.
// Caller holds f.mu.
func (f *focus) bridgeAt(site ids.SiteID, open *fullness) Bridge {
	var best *bridgeEntry
	for _, e := range f.bridges {
		if !e.up || e.b.Site() != site || open.skips(e) {
			continue
		}
		if best == nil || e.load.Peers < best.load.Peers ||
			(e.load.Peers == best.load.Peers && e.b.ID() < best.b.ID()) {
			best = e
		}
	}
	if best == nil {
		return nil
	}
	return best.b
}

// place returns the bridge for an endpoint at site: its own site's, else the nearest
// ancestor's, else the root bridge; a full bridge is passed over for the next
// (errBridgesFull when every one was full).
func (f *focus) place(site ids.SiteID) (Bridge, error) {
	chain := append([]ids.SiteID{site}, f.ancestors(site)...)
	f.mu.Lock()
	defer f.mu.Unlock()
	open := &fullness{now: time.Now()}
	for _, s := range chain {
		if b := f.bridgeAt(s, open); b != nil {
			return b, nil
		}
	}
	if f.root != nil {
		if e := f.bridges[f.root.ID()]; e != nil && e.up && !open.skips(e) {
			return f.root, nil
		}
	}
	for _, e := range f.sorted() {
		if !open.skips(e) {
			return e.b, nil // no tree knowledge: any live bridge beats none
		}
	}
	if open.skipped {
		return nil, errBridgesFull
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
		if p := f.bridgeAt(s, nil); p != nil { // a full bridge still relays for its endpoints
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

func (f *focus) ancestors(site ids.SiteID) []ids.SiteID {
	anc := f.ancestry.Load()
	if anc == nil || *anc == nil {
		return nil
	}
	var out []ids.SiteID
	for _, a := range (*anc)(string(site)) {
		out = append(out, ids.SiteID(a))
	}
	return out
}

// tree returns the parent of every bridge on the way up from the bridges given: the
// bridge tree relay planning needs, read in one go.
func (f *focus) tree(from []Bridge) map[ids.BridgeID]ids.BridgeID {
	out := map[ids.BridgeID]ids.BridgeID{}
	seen := map[ids.BridgeID]bool{}
	for _, b := range from {
		for x := b; x != nil && !seen[x.ID()]; {
			seen[x.ID()] = true
			p := f.parent(x)
			if p == nil {
				break
			}
			out[x.ID()] = p.ID()
			x = p
		}
	}
	return out
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
		out[string(id)] = string(e.b.Site())
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
			out[string(id)] = e.load.Relays
		}
	}
	s.focus.mu.Unlock()
	if s.local != nil {
		out[string(s.local.ID())] = s.local.agent.RelayStats()
	}
	return out
}
