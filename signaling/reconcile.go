package signaling

import (
	"context"
	"time"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/relayplan"
)

// reconcile plans what every bridge of the meeting should forward (package relayplan),
// records the plan, and queues the commands that get there on m.ops: relay links first,
// then subscriptions, then links no longer needed. Caller holds m.mu; no bridge is called
// under it.
func (m *meeting) reconcile() {
	m.plans++
	in, bridges := m.planInput()
	plan := relayplan.Compute(in)
	// Exact until a part of the plan cannot be applied for want of a bridge (set below).
	m.planExact = true

	haveLinks := make(map[relayplan.Link]bool, len(m.relays))
	for l := range m.relays {
		haveLinks[l] = true
	}
	ch := relayplan.Diff(haveLinks, m.fwd, plan)
	for _, l := range ch.OpenLinks {
		child, parent := bridges[l.Child], bridges[l.Parent]
		if child == nil || parent == nil {
			m.planExact = false
			continue // went down since the tree was read; bridgeDown reconciles again
		}
		m.relays[l] = m.openRelay(child, parent)
	}
	for _, f := range ch.Unsubscribe {
		delete(m.fwd, f)
		if b := bridges[f.Bridge]; b != nil {
			m.ops.push(func() {
				if err := b.Unsubscribe(f.Peer, f.Key); err != nil {
					m.srv.log.Debug("unsubscribe", "bridge", f.Bridge, "peer", f.Peer.String(), "key", f.Key.String(), "err", err)
				}
			})
		}
	}
	// One op per receiving peer with all its new tracks: they are added back to back, so
	// the bridge's batching window gives the peer one renegotiation for all of them,
	// rather than their adds interleaving with other joins' on the op queue and straddling
	// it (a joiner's four tracks took 3.1 offers per join in a 258-endpoint storm).
	byPeer := map[peerAt][]relayplan.Forward{}
	var order []peerAt
	for f, t := range ch.Subscribe {
		if bridges[f.Bridge] == nil {
			m.planExact = false
			continue
		}
		m.fwd[f] = t
		at := peerAt{f.Bridge, f.Peer}
		if byPeer[at] == nil {
			order = append(order, at)
		}
		byPeer[at] = append(byPeer[at], f)
	}
	for _, at := range order {
		fs := byPeer[at]
		tracks := make([]relayplan.Track, len(fs))
		for i, f := range fs {
			tracks[i] = ch.Subscribe[f]
		}
		m.pushSubscribes(bridges[at.bridge], fs, tracks, false)
	}
	for _, l := range ch.CloseLinks {
		if r := m.relays[l]; r != nil {
			delete(m.relays, l)
			r.close("")
		}
	}
	m.syncPins(bridges)
}

// firstOfferer is a bridge that can make a peer's first subscriber offer at once rather
// than when its batching window closes (LocalBridge; a remote bridge keeps the window).
type firstOfferer interface {
	OfferNow(peer ids.PeerID) error
}

// pushSubscribes queues, as one op, the subscriptions of one peer on bridge b: fs with
// their tracks. joiner says they are all a joining endpoint is to receive (subscribeJoiner):
// then its first offer goes out at once. Caller holds m.mu.
func (m *meeting) pushSubscribes(b Bridge, fs []relayplan.Forward, tracks []relayplan.Track, joiner bool) {
	m.ops.push(func() {
		for i, f := range fs {
			t := tracks[i]
			if err := b.Subscribe(f.Peer, f.Key, t.TrackID, t.StreamID, m.id); err != nil {
				m.srv.log.Warn("subscribe", "bridge", f.Bridge, "peer", f.Peer.String(), "key", f.Key.String(), "err", err)
			}
		}
		if fo, ok := b.(firstOfferer); ok && joiner && len(fs) > 0 {
			if err := fo.OfferNow(fs[0].Peer); err != nil {
				m.srv.log.Debug("first offer", "bridge", fs[0].Bridge, "peer", fs[0].Peer.String(), "err", err)
			}
		}
	})
}

// planInput reads what a plan is made from: the subscribers and their bridges, the
// streams the floor lets through, and the bridge tree above the occupied bridges; and
// every bridge named, by id. Caller holds m.mu.
func (m *meeting) planInput() (relayplan.Input, map[ids.BridgeID]Bridge) {
	in := relayplan.Input{Meeting: m.id}
	bridges := map[ids.BridgeID]Bridge{}
	var occupied []Bridge
	for _, s := range m.participants {
		if s.bridge == nil {
			continue
		}
		if !s.sendOnly {
			in.Subscribers = append(in.Subscribers, relayplan.Subscriber{Participant: ids.ParticipantID(s.self.ID),
				Bridge: s.bridge.ID(), Peer: s.peerID})
		}
		if bridges[s.bridge.ID()] == nil {
			bridges[s.bridge.ID()] = s.bridge
			occupied = append(occupied, s.bridge)
		}
	}
	for key, st := range m.streams {
		if ps, ok := m.planStream(key, st); ok {
			in.Streams = append(in.Streams, ps)
		}
	}
	in.Parent = m.srv.focus.tree(occupied)
	for _, p := range in.Parent {
		if bridges[p] == nil {
			bridges[p] = m.srv.focus.byID(p)
		}
	}
	return in, bridges
}

// planStream is a stream as a plan takes it; false if the floor does not let its site
// send it now. Caller holds m.mu.
func (m *meeting) planStream(key ids.StreamKey, st *streamInfo) (relayplan.Stream, bool) {
	if !m.allowed(st) {
		return relayplan.Stream{}, false
	}
	stream := st.owner.self.Streams[protocol.SourceCamera]
	if st.source == protocol.SourceScreen {
		stream = st.owner.self.Streams[protocol.SourceScreen]
	}
	return relayplan.Stream{Key: key, Origin: st.origin.ID(), StreamID: stream}, true
}

// peerAt names a peer on a bridge.
type peerAt struct {
	bridge ids.BridgeID
	peer   ids.PeerID
}

// opQueue runs a meeting's bridge commands in the order they were queued, on one
// goroutine (run), so the meeting's lock is never held while a bridge builds or closes
// a peer connection. The queue is unbounded: pushing never blocks the meeting.
type opQueue struct{ fifo[func()] }

func newOpQueue() *opQueue { return &opQueue{newFIFO[func()]()} }

// push queues op; after close it is dropped.
func (q *opQueue) push(op func()) { q.fifo.push(op) }

// run runs the ops in order until the queue is closed (close) and empty.
func (q *opQueue) run() { q.drain(func(op func()) { op() }) }

// relayLink is a WebRTC relay between a bridge and its parent for one meeting. Each
// bridge has a peer facing the other, cross-wired: the child's subscriber connection is
// the parent's publisher connection and the other way round, so each side offers what it
// sends and streams flow both ways without offer collisions.
type relayLink struct {
	m                     *meeting
	child, parent         Bridge
	childPeer, parentPeer ids.PeerID
}

// openRelay records a link and queues the creation of its two peers. Caller holds m.mu.
func (m *meeting) openRelay(child, parent Bridge) *relayLink {
	l := &relayLink{m: m, child: child, parent: parent,
		childPeer: ids.ForRelay(m.id, parent.ID()), parentPeer: ids.ForRelay(m.id, child.ID())}
	m.ops.push(func() {
		r := &m.srv.router
		r.set(child, l.childPeer, l)
		r.set(parent, l.parentPeer, l)
		if l.adoptRelay() { // the link of the node that ran the meeting before (resume.go)
			return
		}
		for _, end := range l.ends() {
			if err := end.b.CreatePeer(end.peer); err != nil {
				m.srv.log.Warn("open relay", "bridge", end.b.ID(), "peer", end.peer.String(), "err", err)
			}
		}
		m.srv.log.Info("relay link opened", "meeting", m.id, "child", child.ID(), "parent", parent.ID())
	})
	return l
}

type relayEnd struct {
	b    Bridge
	peer ids.PeerID
}

func (l *relayLink) ends() []relayEnd {
	return []relayEnd{{l.child, l.childPeer}, {l.parent, l.parentPeer}}
}

// close queues the closing of both ends, except on the bridge named dead (it is gone).
// Caller holds l.m.mu.
func (l *relayLink) close(dead ids.BridgeID) {
	l.m.ops.push(func() {
		r := &l.m.srv.router
		for _, end := range l.ends() {
			if r.owner(end.b, end.peer) == peerOwner(l) {
				r.set(end.b, end.peer, nil)
			}
			if end.b.ID() == dead {
				continue
			}
			if err := end.b.ClosePeer(end.peer); err != nil {
				l.m.srv.log.Debug("close relay", "bridge", end.b.ID(), "err", err)
			}
		}
		l.m.srv.log.Info("relay link closed", "meeting", l.m.id, "child", l.child.ID(), "parent", l.parent.ID())
	})
}

func (l *relayLink) other(b Bridge) (Bridge, ids.PeerID) {
	if b.ID() == l.child.ID() {
		return l.parent, l.parentPeer
	}
	return l.child, l.childPeer
}

func (l *relayLink) peerOffer(b Bridge, peer ids.PeerID, sdp string) {
	other, otherPeer := l.other(b)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		answer, err := other.Offer(ctx, otherPeer, sdp, nil)
		if err == nil {
			err = b.Answer(peer, answer)
		}
		if err != nil {
			l.m.srv.log.Warn("relay negotiation", "meeting", l.m.id, "from", b.ID(), "to", other.ID(), "err", err)
		}
	}()
}

func (l *relayLink) peerCandidate(b Bridge, _ ids.PeerID, t protocol.Target, c protocol.ICECandidate) {
	other, otherPeer := l.other(b)
	// b's subscriber connection is other's publisher connection, and vice versa.
	flipped := protocol.TargetPublisher
	if t == protocol.TargetPublisher {
		flipped = protocol.TargetSubscriber
	}
	if err := other.AddCandidate(otherPeer, flipped, c); err != nil {
		l.m.srv.log.Debug("relay candidate", "err", err)
	}
}

func (l *relayLink) trackPublished(Bridge, ids.PeerID, ids.StreamKey, string) {}
func (l *relayLink) trackEnded(Bridge, ids.PeerID, ids.StreamKey)             {}

func (l *relayLink) peerFailed(b Bridge, _ ids.PeerID, reason string) {
	l.m.srv.log.Warn("relay link failed", "meeting", l.m.id, "bridge", b.ID(), "reason", reason)
	go l.m.relayFailed(l)
}
