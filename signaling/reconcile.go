package signaling

import (
	"context"
	"github.com/cau-project/cau/bridge"
	"time"

	"github.com/cau-project/cau/protocol"
)

// reconcile computes what every bridge of the meeting should forward and applies the
// difference: relay links first, then subscriptions, then links no longer needed.
// Caller holds m.mu.
//
// The relay tree is the smallest part of the bridge tree that joins the bridges with
// participants: the link above bridge c is needed iff some, but not all, of those bridges
// lie in c's subtree. A stream from origin O to a subscriber on bridge T follows the
// unique tree path O → … → T, so it crosses each link at most once, and only links with
// a subscriber beyond them.
func (m *meeting) reconcile() {
	f := &m.srv.focus
	paths := map[string][]Bridge{} // bridge id → path to the top bridge, itself first
	pathOf := func(b Bridge) []Bridge {
		if p, ok := paths[b.ID()]; ok {
			return p
		}
		var p []Bridge
		seen := map[string]bool{}
		for x := b; x != nil && !seen[x.ID()]; x = f.parent(x) {
			seen[x.ID()] = true // parents are strict ancestors; this guards bad data only
			p = append(p, x)
		}
		paths[b.ID()] = p
		return p
	}

	// Bridges with participants, and how many of them lie below each link.
	occupied := map[string]Bridge{}
	for _, s := range m.participants {
		if s.bridge != nil {
			occupied[s.bridge.ID()] = s.bridge
		}
	}
	below := map[edge]int{}
	links := map[edge][2]Bridge{}
	for _, b := range occupied {
		p := pathOf(b)
		for i := 0; i+1 < len(p); i++ {
			e := edge{p[i].ID(), p[i+1].ID()}
			below[e]++
			links[e] = [2]Bridge{p[i], p[i+1]}
		}
	}
	wantLinks := map[edge][2]Bridge{}
	for e, n := range below {
		if n < len(occupied) {
			wantLinks[e] = links[e]
		}
	}

	// Forwarding wanted: each participant receives every other participant's streams.
	want := map[fwdKey]fwdVal{}
	for key, st := range m.streams {
		if !m.allowed(st) {
			continue // the floor does not let this site send this now
		}
		for _, sub := range m.participants {
			if sub == st.owner || sub.bridge == nil {
				continue
			}
			stream := st.owner.self.Streams[protocol.SourceCamera]
			if st.source == protocol.SourceScreen {
				stream = st.owner.self.Streams[protocol.SourceScreen]
			}
			want[fwdKey{sub.bridge.ID(), sub.peerID, key}] = fwdVal{b: sub.bridge, trackID: key, streamID: stream}
			for _, hop := range route(pathOf(st.origin), pathOf(sub.bridge)) {
				l, ok := wantLinks[edge{hop.child, hop.parent}]
				if !ok {
					continue // cannot happen: every link between two occupied bridges is wanted
				}
				from, to := l[0], l[1] // child, parent
				if !hop.up {
					from, to = to, from
				}
				want[fwdKey{from.ID(), relayPeerID(m.id, to), key}] = fwdVal{b: from, trackID: key, streamID: key}
			}
		}
	}

	for e, bs := range wantLinks {
		if m.relays[e] == nil {
			m.relays[e] = m.openRelay(bs[0], bs[1])
		}
	}
	for k, v := range m.fwd {
		if _, ok := want[k]; !ok {
			delete(m.fwd, k)
			if err := v.b.Unsubscribe(k.peer, k.key); err != nil {
				m.srv.log.Debug("unsubscribe", "bridge", k.bridge, "peer", k.peer, "key", k.key, "err", err)
			}
		}
	}
	for k, v := range want {
		if _, ok := m.fwd[k]; !ok {
			m.fwd[k] = v
			if err := v.b.Subscribe(k.peer, k.key, v.trackID, v.streamID); err != nil {
				m.srv.log.Warn("subscribe", "bridge", k.bridge, "peer", k.peer, "key", k.key, "err", err)
			}
		}
	}
	for e, l := range m.relays {
		if _, ok := wantLinks[e]; !ok {
			delete(m.relays, e)
			l.close("")
		}
	}
}

// hop is one relay link crossed by a stream, upwards (child → parent) or downwards.
type hop struct {
	child, parent string
	up            bool
}

// route lists the links from the bridge whose path to the top is from to the one whose
// path is to: up to their lowest common bridge, then down.
func route(from, to []Bridge) []hop {
	onTo := map[string]int{}
	for i, b := range to {
		onTo[b.ID()] = i
	}
	var hops []hop
	for i, b := range from {
		if j, ok := onTo[b.ID()]; ok {
			for k := j; k > 0; k-- {
				hops = append(hops, hop{child: to[k-1].ID(), parent: to[k].ID(), up: false})
			}
			return hops
		}
		if i+1 < len(from) {
			hops = append(hops, hop{child: b.ID(), parent: from[i+1].ID(), up: true})
		}
	}
	return nil // different trees: no route (cannot happen with one top bridge)
}

// relayPeerID names, on one bridge, the peer that faces bridge other for meeting.
func relayPeerID(meeting string, other Bridge) string {
	return bridge.RelayPrefix + meeting + "~" + other.ID()
}

// relayLink is a WebRTC relay between a bridge and its parent for one meeting. Each
// bridge has a peer facing the other, cross-wired: the child's subscriber connection is
// the parent's publisher connection and the other way round, so each side offers what it
// sends and streams flow both ways without offer collisions.
type relayLink struct {
	m                     *meeting
	child, parent         Bridge
	childPeer, parentPeer string
}

func (m *meeting) openRelay(child, parent Bridge) *relayLink {
	l := &relayLink{m: m, child: child, parent: parent,
		childPeer: relayPeerID(m.id, parent), parentPeer: relayPeerID(m.id, child)}
	r := &m.srv.router
	r.set(child, l.childPeer, l)
	r.set(parent, l.parentPeer, l)
	for _, end := range []struct {
		b    Bridge
		peer string
	}{{child, l.childPeer}, {parent, l.parentPeer}} {
		if err := end.b.CreatePeer(end.peer); err != nil {
			m.srv.log.Warn("open relay", "bridge", end.b.ID(), "peer", end.peer, "err", err)
		}
	}
	m.srv.log.Info("relay link opened", "meeting", m.id, "child", child.ID(), "parent", parent.ID())
	return l
}

// close closes both ends, except on the bridge named dead (it is gone).
func (l *relayLink) close(dead string) {
	r := &l.m.srv.router
	r.set(l.child, l.childPeer, nil)
	r.set(l.parent, l.parentPeer, nil)
	for _, end := range []struct {
		b    Bridge
		peer string
	}{{l.child, l.childPeer}, {l.parent, l.parentPeer}} {
		if end.b.ID() == dead {
			continue
		}
		if err := end.b.ClosePeer(end.peer); err != nil {
			l.m.srv.log.Debug("close relay", "bridge", end.b.ID(), "err", err)
		}
	}
	l.m.srv.log.Info("relay link closed", "meeting", l.m.id, "child", l.child.ID(), "parent", l.parent.ID())
}

func (l *relayLink) other(b Bridge) (Bridge, string) {
	if b.ID() == l.child.ID() {
		return l.parent, l.parentPeer
	}
	return l.child, l.childPeer
}

func (l *relayLink) peerOffer(b Bridge, peer, sdp string) {
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

func (l *relayLink) peerCandidate(b Bridge, _ string, t protocol.Target, c protocol.ICECandidate) {
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

func (l *relayLink) trackPublished(Bridge, string, string, string) {}
func (l *relayLink) trackEnded(Bridge, string, string)             {}

func (l *relayLink) peerFailed(b Bridge, _ string, reason string) {
	l.m.srv.log.Warn("relay link failed", "meeting", l.m.id, "bridge", b.ID(), "reason", reason)
	go l.m.relayFailed(l)
}
