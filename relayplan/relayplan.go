// Package relayplan decides, for one meeting, which relay links between bridges are
// needed and what every bridge forwards to whom. It is a pure function of who is where,
// what is published and the bridge tree; signaling applies its result (Diff) to the
// bridges, outside its meeting lock.
//
// The relay tree is the smallest part of the bridge tree that joins the bridges with
// subscribers: the link above bridge c is needed iff some, but not all, of those bridges
// lie in c's subtree. A stream from origin O to a subscriber on bridge T follows the
// unique tree path O → … → T, so it crosses each link at most once, and only links with
// a subscriber beyond them.
package relayplan

import "github.com/cau-project/cau/ids"

// Subscriber is a participant that receives the meeting's streams, on its bridge's peer.
type Subscriber struct {
	Participant ids.ParticipantID
	Bridge      ids.BridgeID
	Peer        ids.PeerID
}

// Stream is a stream the floor lets through now, published on bridge Origin. StreamID is
// the media stream id subscribers see it in (its owner's camera or screen stream).
type Stream struct {
	Key      ids.StreamKey
	Origin   ids.BridgeID
	StreamID string
}

// Input is what a plan is made from.
type Input struct {
	Meeting     ids.MeetingID
	Subscribers []Subscriber
	Streams     []Stream
	// Parent maps each bridge to the bridge above it; the top bridge has none. It must
	// form a tree (every chain ends); a loop is cut where it closes.
	Parent map[ids.BridgeID]ids.BridgeID
}

// Link is a relay link between a bridge and its parent bridge.
type Link struct{ Child, Parent ids.BridgeID }

// Forward is one forwarding: Bridge sends stream Key to its peer Peer.
type Forward struct {
	Bridge ids.BridgeID
	Peer   ids.PeerID
	Key    ids.StreamKey
}

// Track is how a forwarded stream appears to the peer that receives it.
type Track struct{ TrackID, StreamID string }

// Plan is the wanted state of a meeting's bridges.
type Plan struct {
	Links    map[Link]bool
	Forwards map[Forward]Track
}

// Compute makes the plan: each subscriber receives every stream but its own
// participant's, directly from its bridge, and every bridge on the way relays it once.
func Compute(in Input) Plan {
	paths := map[ids.BridgeID][]ids.BridgeID{} // bridge → path to the top, itself first
	pathOf := func(b ids.BridgeID) []ids.BridgeID {
		if p, ok := paths[b]; ok {
			return p
		}
		var p []ids.BridgeID
		seen := map[ids.BridgeID]bool{}
		for x, ok := b, true; ok && !seen[x]; x, ok = in.Parent[x] {
			seen[x] = true // a loop in bad data ends the path
			p = append(p, x)
		}
		paths[b] = p
		return p
	}

	// Bridges with subscribers or a stream's origin (a send-only publisher, WHIP, may be
	// alone on its bridge), and how many of them lie below each link.
	occupied := map[ids.BridgeID]bool{}
	for _, s := range in.Subscribers {
		occupied[s.Bridge] = true
	}
	for _, st := range in.Streams {
		occupied[st.Origin] = true
	}
	below := map[Link]int{}
	for b := range occupied {
		p := pathOf(b)
		for i := 0; i+1 < len(p); i++ {
			below[Link{p[i], p[i+1]}]++
		}
	}
	plan := Plan{Links: map[Link]bool{}, Forwards: map[Forward]Track{}}
	for l, n := range below {
		if n < len(occupied) {
			plan.Links[l] = true
		}
	}

	for _, st := range in.Streams {
		routed := map[ids.BridgeID]bool{} // the relay path to a bridge serves all its subscribers
		for _, sub := range in.Subscribers {
			if sub.Participant == st.Key.Participant {
				continue
			}
			plan.Forwards[Forward{sub.Bridge, sub.Peer, st.Key}] = Track{TrackID: st.Key.String(), StreamID: st.StreamID}
			if routed[sub.Bridge] {
				continue
			}
			routed[sub.Bridge] = true
			for _, h := range route(pathOf(st.Origin), pathOf(sub.Bridge)) {
				if !plan.Links[h.link] {
					continue // cannot happen: every link between two occupied bridges is wanted
				}
				from, to := h.link.Child, h.link.Parent
				if !h.up {
					from, to = to, from
				}
				// Across a relay the key is the track id and the stream id: the far bridge
				// learns the key from it.
				plan.Forwards[Forward{from, ids.ForRelay(in.Meeting, to), st.Key}] = Track{TrackID: st.Key.String(), StreamID: st.Key.String()}
			}
		}
	}
	return plan
}

// hop is one relay link crossed by a stream, upwards (child → parent) or downwards.
type hop struct {
	link Link
	up   bool
}

// route lists the links from the bridge whose path to the top is from to the one whose
// path is to: up to their lowest common bridge, then down. Nil if they share no bridge.
func route(from, to []ids.BridgeID) []hop {
	onTo := map[ids.BridgeID]int{}
	for i, b := range to {
		onTo[b] = i
	}
	var hops []hop
	for i, b := range from {
		if j, ok := onTo[b]; ok {
			for k := j; k > 0; k-- {
				hops = append(hops, hop{link: Link{to[k-1], to[k]}, up: false})
			}
			return hops
		}
		if i+1 < len(from) {
			hops = append(hops, hop{link: Link{b, from[i+1]}, up: true})
		}
	}
	return nil
}

// Changes are what turns one plan's state into another's, in the order to apply them:
// open links, then stop forwardings, then start forwardings, then close links.
type Changes struct {
	OpenLinks   []Link
	Unsubscribe []Forward
	Subscribe   map[Forward]Track
	CloseLinks  []Link
}

// Empty reports whether there is nothing to do.
func (c Changes) Empty() bool {
	return len(c.OpenLinks) == 0 && len(c.Unsubscribe) == 0 && len(c.Subscribe) == 0 && len(c.CloseLinks) == 0
}

// Diff lists the changes from the links and forwardings in place (have) to the plan.
func Diff(haveLinks map[Link]bool, haveForwards map[Forward]Track, want Plan) Changes {
	c := Changes{Subscribe: map[Forward]Track{}}
	for l := range want.Links {
		if !haveLinks[l] {
			c.OpenLinks = append(c.OpenLinks, l)
		}
	}
	for f := range haveForwards {
		if _, ok := want.Forwards[f]; !ok {
			c.Unsubscribe = append(c.Unsubscribe, f)
		}
	}
	for f, t := range want.Forwards {
		if _, ok := haveForwards[f]; !ok {
			c.Subscribe[f] = t
		}
	}
	for l := range haveLinks {
		if !want.Links[l] {
			c.CloseLinks = append(c.CloseLinks, l)
		}
	}
	return c
}
