// Package bridge runs a bridge (package sfu) on behalf of signaling. The Agent names peers
// and streams with the identities of package ids and speaks the types of package protocol
// only, so that signaling can drive a bridge in its own process or in another one, over
// the control protocol (protocol/bridge.go), without knowing WebRTC; Run is that other
// process's end of the control socket, and package bridge/control signaling's end.
//
// Streams are named by keys that signaling chooses (ids.StreamKey). An endpoint's offer
// maps its track ids to keys; a stream that arrives over a relay link carries its key as
// its track id, so it keeps its name from bridge to bridge.
package bridge

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/sfu"
	"github.com/cau-project/cau/sfu/hopstats"
)

// Events are what an Agent reports, in protocol terms. Callbacks run on the bridge's
// goroutines and must not block.
type Events struct {
	// Offer is a peer's subscriber offer, to be answered through Answer.
	Offer func(peer ids.PeerID, sdp string)
	// Candidate is a local ICE candidate of one of a peer's connections.
	Candidate func(peer ids.PeerID, target protocol.Target, c protocol.ICECandidate)
	// Track reports that a peer publishes the stream key (kind "audio" or "video").
	Track func(peer ids.PeerID, key ids.StreamKey, kind string)
	// TrackEnded reports that the stream key published by peer ended.
	TrackEnded func(peer ids.PeerID, key ids.StreamKey)
	// Failed reports that a peer's connection failed; the agent has closed it.
	Failed func(peer ids.PeerID, reason string)
	// Speaker reports a meeting's new selection on this bridge: its dominant speaker and
	// the participants whose camera it forwards (Last-N). Nil: not reported.
	Speaker func(meeting ids.MeetingID, dominant ids.ParticipantID, lastN []ids.ParticipantID)
	// PublishLayers reports the layers (RIDs) of a simulcast source peer publishes that
	// anyone needs now (view.go), each time that changes. Nil: every layer is sent.
	PublishLayers func(peer ids.PeerID, key ids.StreamKey, active []string)
	// Slots reports a slot peer's slot map (slots.go) each time it changes, before the
	// slots change source. Nil: not reported.
	Slots func(peer ids.PeerID, slots []protocol.SlotSource)
}

// Engine is the media engine an Agent drives; *sfu.Bridge is one.
type Engine interface {
	NewPeer(sfu.PeerParams) (*sfu.Peer, error)
	// NewSelector makes a meeting's Last-N selector (lastn.go).
	NewSelector(sfu.SelectorParams) *sfu.Selector
}

// ErrUnknownPeer is returned for a peer id the agent does not have.
var ErrUnknownPeer = errors.New("bridge: unknown peer")

// ErrBadSDP marks a description the bridge refused (the endpoint's fault, not the
// bridge's); a remote bridge reports it with protocol.CodeBadSDP.
var ErrBadSDP = errors.New("bridge refused the session description")

// Agent drives one media engine by peer and stream identities.
type Agent struct {
	sfu Engine
	ev  Events
	log *slog.Logger

	mu      sync.Mutex               // guards peers, streams, subs, samples
	samples map[sampleKey]byteSample // last sample per peer and direction, for bitrates
	peers   map[ids.PeerID]*agentPeer
	streams map[ids.StreamKey]stream
	subs    map[subKey]*subscription
	// recordings are the RecordStreams in force (record.go).
	recordings map[*recording]struct{}
	// selectors are the meetings' Last-N selectors and meetingOf each selectable
	// stream's meeting (lastn.go); speaker is the parameters new selectors get.
	selectors map[ids.MeetingID]*meetingSelector
	meetingOf map[ids.StreamKey]ids.MeetingID
	// limit caps the endpoint peers (limits.go), counted in count (shared by the agents
	// of one process).
	limit peerLimit
	count *PeerCount
	// pins are the participants pinned per meeting (Pin), applied to its selector now
	// and to one made later.
	pins map[ids.MeetingID]map[ids.ParticipantID]bool
	// peerPins are the participants each subscriber pinned for its own link (PinFor).
	peerPins map[ids.PeerID]map[ids.ParticipantID]bool
	// views are each subscriber's layer caps per stream (SetView, view.go).
	views map[ids.PeerID]map[ids.StreamKey]int
	// layerCaps are the subscribers' layer caps (CapLayers); absent: no cap.
	layerCaps map[ids.PeerID]int
}

type agentPeer struct {
	id   ids.PeerID
	peer *sfu.Peer
	keys map[string]ids.StreamKey // msid track id → stream key; guarded by Agent.mu
	// useSlots is set when the peer receives in slots (slots.go); slots are its slots,
	// made with its first camera or microphone subscription, fed by slotMeeting's
	// selector. Guarded by Agent.mu.
	useSlots    bool
	slots       *sfu.SlotSet
	slotMeeting ids.MeetingID
}

type stream struct {
	up   *sfu.UpTrack
	peer ids.PeerID // who publishes it here (an endpoint, or the relay it came from)
}

type subKey struct {
	peer ids.PeerID
	key  ids.StreamKey
}

// sampleKey names one byte counter sampled for a bitrate: what a peer sends or receives.
type sampleKey struct {
	peer ids.PeerID
	up   bool // what the peer sends us
}

type byteSample struct {
	at    time.Time
	bytes uint64
}

// subscription is signaling's wish that peer receive key. It outlives the stream: if the
// stream ends and comes back (a relay re-established), forwarding resumes by itself.
type subscription struct {
	trackID, streamID string
	down              *sfu.DownTrack // nil while the stream is absent
	pinned            bool           // the subscriber pinned the stream's participant (PinFor)
	maxLayer          int            // the subscriber's view of the stream caps its layer (SetView)
	slot              bool           // the stream reaches the peer in its slots, never as a track of its own
}

// NewAgent wraps b. ev receives the agent's events.
func NewAgent(b Engine, ev Events, log *slog.Logger) *Agent {
	if log == nil {
		log = slog.Default()
	}
	return &Agent{sfu: b, ev: ev, log: log, peers: map[ids.PeerID]*agentPeer{}, samples: map[sampleKey]byteSample{},
		streams: map[ids.StreamKey]stream{}, subs: map[subKey]*subscription{},
		selectors: map[ids.MeetingID]*meetingSelector{}, meetingOf: map[ids.StreamKey]ids.MeetingID{},
		pins: map[ids.MeetingID]map[ids.ParticipantID]bool{}, peerPins: map[ids.PeerID]map[ids.ParticipantID]bool{},
		views:     map[ids.PeerID]map[ids.StreamKey]int{},
		layerCaps: map[ids.PeerID]int{},
		count:     NewPeerCount()}
}

// CreatePeer creates the two connections of a peer (an endpoint, or one end of a relay).
func (a *Agent) CreatePeer(id ids.PeerID) error {
	a.mu.Lock()
	if _, ok := a.peers[id]; ok {
		a.mu.Unlock()
		return fmt.Errorf("create peer %s: already exists", id)
	}
	if err := a.admit(id); err != nil {
		a.mu.Unlock()
		return err
	}
	ap := &agentPeer{id: id, keys: map[string]ids.StreamKey{}}
	a.peers[id] = ap
	a.counted(id, 1)
	a.mu.Unlock()
	params := sfu.PeerParams{
		ID:     id.String(),
		Logger: a.log.With("peer", id.String()),
		Relay:  id.IsRelay(),
		OnCandidate: func(t sfu.Target, c webrtc.ICECandidateInit) {
			if a.ev.Candidate != nil {
				a.ev.Candidate(id, protocol.Target(t.String()), fromPion(c))
			}
		},
		OnSubscriberOffer: func(sdp string) {
			if a.ev.Offer != nil {
				a.ev.Offer(id, sdp)
			}
		},
		OnTrack:      func(up *sfu.UpTrack) { a.published(ap, up) },
		OnTrackEnded: func(up *sfu.UpTrack) { a.ended(ap, up) },
		OnFailed: func(err error) {
			a.forget(id)
			if a.ev.Failed != nil {
				a.ev.Failed(id, err.Error())
			}
		},
	}
	if a.ev.PublishLayers != nil {
		params.OnPublishLayers = func(up *sfu.UpTrack, active []string) { a.publishLayers(ap, up, active) }
	}
	p, err := a.sfu.NewPeer(params)
	if err != nil {
		a.mu.Lock()
		if a.peers[id] == ap {
			delete(a.peers, id)
			a.counted(id, -1)
		}
		a.mu.Unlock()
		return fmt.Errorf("create peer %s: %w", id, err)
	}
	a.mu.Lock()
	if a.peers[id] != ap {
		// ClosePeer ran while the connections were being built (a session that ended
		// mid-join, a migration undone): nobody holds this peer any more, so close it
		// rather than leave it running forever.
		a.mu.Unlock()
		if err := p.Close(); err != nil {
			a.log.Debug("close peer closed while created", "peer", id.String(), "err", err)
		}
		return fmt.Errorf("create peer %s: %w", id, ErrClosedWhileCreated)
	}
	ap.peer = p
	a.mu.Unlock()
	return nil
}

// ErrClosedWhileCreated: ClosePeer was called for a peer whose CreatePeer had not
// returned yet; the peer is closed and CreatePeer returns this.
var ErrClosedWhileCreated = errors.New("closed while being created")

func (a *Agent) peer(id ids.PeerID) (*agentPeer, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ap := a.peers[id]
	if ap == nil || ap.peer == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownPeer, id)
	}
	return ap, nil
}

// Offer applies a remote offer to a peer's publisher connection and returns the answer.
// keys names the streams the offer publishes (msid track id → key); may be nil.
func (a *Agent) Offer(id ids.PeerID, sdp string, keys map[string]ids.StreamKey) (string, error) {
	ap, err := a.peer(id)
	if err != nil {
		return "", err
	}
	if !id.IsRelay() {
		for msid, key := range keys {
			if key.Participant != id.Endpoint.Participant {
				return "", fmt.Errorf("%w: track %q may not publish %s as %s", ErrBadSDP, msid, key, id)
			}
		}
	}
	a.mu.Lock()
	// An offer describes every track its publisher sends now (signaling keys each one),
	// so its keys replace the earlier offers': a client that renegotiates with fresh
	// track ids again and again cannot grow the map (issue 12, finding 4).
	ap.keys = make(map[string]ids.StreamKey, len(keys))
	for msid, key := range keys {
		ap.keys[msid] = key
	}
	a.mu.Unlock()
	answer, err := ap.peer.HandleOffer(sdp)
	if errors.Is(err, sfu.ErrBadSDP) {
		return "", fmt.Errorf("%w: %w", ErrBadSDP, err)
	}
	return answer, err
}

// Answer applies the remote answer to a peer's last subscriber offer.
func (a *Agent) Answer(id ids.PeerID, sdp string) error {
	ap, err := a.peer(id)
	if err != nil {
		return err
	}
	return ap.peer.HandleAnswer(sdp)
}

// AddCandidate adds a remote ICE candidate to one of a peer's connections.
func (a *Agent) AddCandidate(id ids.PeerID, t protocol.Target, c protocol.ICECandidate) error {
	ap, err := a.peer(id)
	if err != nil {
		return err
	}
	target := sfu.Publisher
	if t == protocol.TargetSubscriber {
		target = sfu.Subscriber
	}
	return ap.peer.AddCandidate(target, webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid,
		SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment})
}

func fromPion(c webrtc.ICECandidateInit) protocol.ICECandidate {
	return protocol.ICECandidate{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex,
		UsernameFragment: c.UsernameFragment}
}

// Subscribe forwards stream key to peer as a track with the given ids, now if the stream
// is here, or as soon as it arrives. meeting, when not empty, is the meeting the stream
// belongs to: its camera and microphone then take part in the meeting's Last-N.
func (a *Agent) Subscribe(id ids.PeerID, key ids.StreamKey, trackID, streamID string, meeting ids.MeetingID) error {
	ap, err := a.peer(id)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	sk := subKey{id, key}
	a.joinMeeting(meeting, key)
	if _, ok := a.subs[sk]; ok {
		return nil
	}
	sub := &subscription{trackID: trackID, streamID: streamID, pinned: a.peerPins[id][key.Participant], maxLayer: a.viewCap(sk)}
	a.subs[sk] = sub
	if slotted(ap, key, meeting) {
		sub.slot = true // forwarded in the peer's slots, as the selector chooses
		return a.followSlots(ap, meeting)
	}
	if st, ok := a.streams[key]; ok && st.peer != id {
		a.attach(ap, sub, st.up)
	}
	return nil
}

// attach starts forwarding; caller holds a.mu.
func (a *Agent) attach(ap *agentPeer, sub *subscription, up *sfu.UpTrack) {
	if sub.slot {
		return
	}
	d, err := ap.peer.Subscribe(up, sub.trackID, sub.streamID)
	if err != nil {
		a.log.Warn("subscribe", "peer", ap.id.String(), "track", sub.trackID, "err", err)
		return
	}
	sub.down = d
	d.SetPinned(sub.pinned)
	d.SetMaxLayer(sub.maxLayer)
}

// CapLayers caps the simulcast layer of every subscription of peer, those it has and
// those it makes later, at layer (see protocol.BridgeLayerCap), under its view's caps
// (viewCap); the link's allocator applies it within a tick.
func (a *Agent) CapLayers(peer ids.PeerID, layer int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.layerCaps[peer] = layer
	for sk, sub := range a.subs {
		if sk.peer == peer {
			sub.maxLayer = a.viewCap(sk)
			if sub.down != nil {
				sub.down.SetMaxLayer(sub.maxLayer)
			}
		}
	}
	if ap := a.peers[peer]; ap != nil && ap.slots != nil {
		ap.slots.SetCaps(slotCaps(a.views[peer], a.layerCaps, peer))
	}
}

// Unsubscribe stops forwarding key to peer.
func (a *Agent) Unsubscribe(id ids.PeerID, key ids.StreamKey) error {
	ap, err := a.peer(id)
	if err != nil {
		return err
	}
	a.mu.Lock()
	sub := a.subs[subKey{id, key}]
	delete(a.subs, subKey{id, key})
	a.leaveMeeting(key)
	a.mu.Unlock()
	if sub != nil && sub.down != nil {
		ap.peer.Unsubscribe(sub.down)
	}
	return nil
}

// OfferNow makes a peer's first subscriber offer at once if one is due (sfu.Peer.OfferNow):
// its caller has subscribed a joining endpoint to everything it is to receive.
func (a *Agent) OfferNow(id ids.PeerID) error {
	ap, err := a.peer(id)
	if err != nil {
		return err
	}
	ap.peer.OfferNow()
	return nil
}

// ClosePeer closes a peer; the streams it published end everywhere.
func (a *Agent) ClosePeer(id ids.PeerID) error {
	a.mu.Lock()
	ap := a.peers[id]
	a.mu.Unlock()
	if ap == nil {
		return fmt.Errorf("%w %q", ErrUnknownPeer, id)
	}
	a.forget(id)
	a.mu.Lock()
	p := ap.peer
	a.mu.Unlock()
	if p == nil {
		return nil // still being created: CreatePeer sees it forgotten and closes it
	}
	return p.Close()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// forget drops a peer's records (not its streams: those end through their tracks).
func (a *Agent) forget(id ids.PeerID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ap, ok := a.peers[id]; ok {
		a.counted(id, -1)
		a.unfollow(ap)
	}
	delete(a.peers, id)
	delete(a.samples, sampleKey{id, true})
	delete(a.samples, sampleKey{id, false})
	delete(a.peerPins, id)
	delete(a.views, id)
	delete(a.layerCaps, id)
	for sk := range a.subs {
		if sk.peer == id {
			delete(a.subs, sk)
			a.leaveMeeting(sk.key)
		}
	}
}

func (a *Agent) published(ap *agentPeer, up *sfu.UpTrack) {
	a.mu.Lock()
	key, ok := a.keyOf(ap, up)
	if !ok {
		a.mu.Unlock()
		return
	}
	a.streams[key] = stream{up: up, peer: ap.id}
	a.streamPublished(key, up)
	a.recordNew(key, up)
	for sk, sub := range a.subs {
		if sk.key == key && sk.peer != ap.id {
			if sp := a.peers[sk.peer]; sp != nil && sp.peer != nil {
				a.attach(sp, sub, up)
			}
		}
	}
	a.mu.Unlock()
	if a.ev.Track != nil {
		a.ev.Track(ap.id, key, up.Kind().String())
	}
}

// keyOf names the stream a peer's new track carries; caller holds a.mu. An endpoint's
// track is named by the server, from the endpoint's own participant id, never by the
// client: the key signaling mapped for its msid track id, else the participant's
// microphone or camera by kind (a track described only by "a=ssrc:N msid:" lines, or not
// at all, is still the publisher's own). Only a relayed stream, from another bridge,
// carries its key as its track id.
func (a *Agent) keyOf(ap *agentPeer, up *sfu.UpTrack) (ids.StreamKey, bool) {
	if !ap.id.IsRelay() {
		key, ok := ap.keys[up.ID()]
		if !ok || key.Participant != ap.id.Endpoint.Participant {
			key = ids.StreamKey{Participant: ap.id.Endpoint.Participant, Source: protocol.SourceCamera}
			if up.Kind() == webrtc.RTPCodecTypeAudio {
				key.Source = protocol.SourceMicrophone
			}
			a.log.Info("track without a mapped stream key published as the peer's own", "peer", ap.id.String(),
				"track", up.ID(), "key", key.String())
		}
		return key, true
	}
	key, err := ids.ParseStreamKey(up.ID())
	if err != nil {
		a.log.Warn("relayed track without a stream key ignored", "peer", ap.id.String(), "track", up.ID(), "err", err)
		return ids.StreamKey{}, false
	}
	return key, true
}

func (a *Agent) ended(ap *agentPeer, up *sfu.UpTrack) {
	a.mu.Lock()
	var key ids.StreamKey
	for k, st := range a.streams {
		if st.up == up {
			key = k
			delete(a.streams, k)
			a.streamEnded(k, up)
			for sk, sub := range a.subs {
				if sk.key == k && sub.down != nil && sub.down.Up() == up {
					sub.down = nil
				}
			}
		}
	}
	a.mu.Unlock()
	if key != (ids.StreamKey{}) && a.ev.TrackEnded != nil {
		a.ev.TrackEnded(ap.id, key)
	}
}

// PeerStats are a peer's forwarding counters.
type PeerStats struct {
	PacketsSent     uint64 // to the peer, all its subscriptions
	BytesSent       uint64 // RTP bytes to the peer
	PacketsReceived uint64 // from the peer, all it publishes
	StreamsSent     int
	StreamsPaused   int // of StreamsSent, held back now: Last-N, or nobody beyond the link needs it
	StreamsReceived int
	// Worst figures over the peer's forwarded tracks, from its receiver reports.
	RTT          time.Duration
	FractionLost float64
	Jitter       time.Duration
	// Hop is the peer's link alone, from its own transport (loss upstream excluded).
	Hop hopstats.Stats
}

// Stats returns a peer's counters.
func (a *Agent) Stats(id ids.PeerID) (PeerStats, error) {
	ap, err := a.peer(id)
	if err != nil {
		return PeerStats{}, err
	}
	s := PeerStats{Hop: ap.peer.HopStats()}
	for _, d := range ap.peer.DownTracks() {
		s.PacketsSent += d.PacketsSent()
		s.BytesSent += d.BytesSent()
		s.StreamsSent++
		if d.Held() {
			s.StreamsPaused++
		}
		q := d.Quality()
		s.RTT = max(s.RTT, q.RTT)
		s.FractionLost = max(s.FractionLost, q.FractionLost)
		s.Jitter = max(s.Jitter, q.Jitter)
	}
	for _, sl := range ap.peer.Slots() { // a slot carrying a source is a stream sent
		s.PacketsSent += sl.PacketsSent()
		s.BytesSent += sl.BytesSent()
		if sl.Source() != "" {
			s.StreamsSent++
		}
	}
	for _, u := range ap.peer.UpTracks() {
		s.PacketsReceived += u.PacketsReceived()
		s.StreamsReceived++
	}
	return s, nil
}

// Peers lists the peer ids.
func (a *Agent) Peers() []ids.PeerID {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]ids.PeerID, 0, len(a.peers))
	for id := range a.peers {
		out = append(out, id)
	}
	return out
}

// Load summarises the agent for heartbeats.
func (a *Agent) Load() (peers, upTracks, downTracks int) {
	a.mu.Lock()
	ps := make([]*sfu.Peer, 0, len(a.peers))
	for _, ap := range a.peers {
		if ap.peer != nil {
			ps = append(ps, ap.peer)
		}
	}
	a.mu.Unlock()
	for _, p := range ps {
		upTracks += len(p.UpTracks())
		downTracks += len(p.DownTracks())
	}
	return len(ps), upTracks, downTracks
}

// RelayStats returns the counters of every relay peer.
func (a *Agent) RelayStats() []protocol.RelayStat {
	var out []protocol.RelayStat
	layers := a.layersByPeer()
	for _, id := range a.Peers() {
		if !id.IsRelay() {
			continue
		}
		st, err := a.Stats(id)
		if err != nil {
			continue // closed meanwhile
		}
		now := time.Now()
		a.mu.Lock()
		prev, ok := a.samples[sampleKey{id, false}]
		a.samples[sampleKey{id, false}] = byteSample{at: now, bytes: st.BytesSent}
		a.mu.Unlock()
		rs := protocol.RelayStat{Peer: id, PacketsSent: st.PacketsSent, BytesSent: st.BytesSent, PacketsRecv: st.PacketsReceived,
			StreamsSent: st.StreamsSent, StreamsPaused: st.StreamsPaused, StreamsRecv: st.StreamsReceived,
			RTTMs: ms(st.RTT), LossPct: 100 * st.FractionLost, JitterMs: ms(st.Jitter)}
		if dt := now.Sub(prev.at).Seconds(); ok && dt > 0 && st.BytesSent >= prev.bytes {
			rs.BitrateBps = 8 * float64(st.BytesSent-prev.bytes) / dt
		}
		rs.Hop, rs.HopIn = hopFigures(st.Hop)
		rs.Layers = layers[id]
		a.mu.Lock()
		if ap := a.peers[id]; ap != nil && ap.peer != nil {
			rs.EstimateBps = estimate(ap.peer)
		}
		a.mu.Unlock()
		out = append(out, rs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Peer.String() < out[j].Peer.String() })
	return out
}
