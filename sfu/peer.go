package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/internal/peerconn"
	"github.com/cau-project/cau/sfu/hopstats"
)

// Target names one of a peer's two connections.
type Target uint8

// The two connections of a peer. Keeping them apart (as LiveKit does) means each side
// always offers on its own connection, so offers never collide (no glare).
const (
	// Publisher carries media from the endpoint to the bridge; the endpoint offers.
	Publisher Target = iota + 1
	// Subscriber carries media from the bridge to the endpoint; the bridge offers.
	Subscriber
)

func (t Target) String() string {
	switch t {
	case Publisher:
		return "publisher"
	case Subscriber:
		return "subscriber"
	}
	return "unknown"
}

// ErrBadSDP wraps errors from applying a remote description.
var ErrBadSDP = errors.New("sfu: bad session description")

// PeerParams configures a Peer. Callbacks run on pion's or the bridge's goroutines and must
// not block for long.
type PeerParams struct {
	// ID names the peer in logs.
	ID     string
	Logger *slog.Logger
	// Relay marks one end of a relay link between two bridges: its connections use full
	// ICE, as the other end is a bridge too. Endpoints' connections use ICE lite.
	Relay bool
	// OnCandidate delivers a local ICE candidate to send to the endpoint.
	OnCandidate func(Target, webrtc.ICECandidateInit)
	// OnSubscriberOffer delivers an offer for the subscriber connection; the endpoint's
	// answer comes back through HandleAnswer.
	OnSubscriberOffer func(sdp string)
	// OnTrack reports a track the endpoint started publishing.
	OnTrack func(*UpTrack)
	// OnTrackEnded reports a published track that ended.
	OnTrackEnded func(*UpTrack)
	// OnFailed reports that a connection failed; the peer has been closed.
	OnFailed func(error)
	// OnPublishLayers reports the layers of a simulcast source this peer publishes that
	// anyone needs now, by RID (dynacast.go), each time that changes; the publisher is to
	// send only those. up is the source's handle (the track OnTrack reported). Nil: no
	// dynacast, every layer is always sent.
	OnPublishLayers func(up *UpTrack, active []string)
}

// Peer is one endpoint's presence on the bridge: a publisher and a subscriber connection.
type Peer struct {
	bridge *Bridge
	params PeerParams
	log    *slog.Logger
	// api makes the peer's connections (the bridge's lite API, or its relay API).
	api *webrtc.API
	// pub is the publisher connection, made by the endpoint's first offer (newPub): an
	// endpoint that only watches never offers, and an unused connection held 15-20 kB of
	// pion state (a certificate, a media engine copy, an interceptor chain) for nothing
	// (issue 11). Relay peers make it in NewPeer (their need reporter writes on it). Set
	// once under mu, read-only after: read it with publisher().
	pub *webrtc.PeerConnection
	sub *webrtc.PeerConnection
	// pubHop and subHop measure the two connections as hops (nil in hand-built benches).
	// subHop is set in NewPeer, pubHop with pub (under mu); read-only after.
	pubHop, subHop *hopstats.Interceptor
	// own is the subscriber connection's own SRTP egress (ownsrtp.go); nil where pion's
	// session encrypts (relay links, Config.PionSRTP). Set in NewPeer.
	own *ownSRTP

	pubNegotiation sync.Mutex // serialises HandleOffer calls (and so newPub)
	// subNegotiation serialises the subscriber connection's description changes:
	// sendOffer, HandleAnswer and offerTimedOut's rollback (pion's PeerConnection does not
	// order a SetLocalDescription against a concurrent SetRemoteDescription).
	subNegotiation sync.Mutex
	// subConnected is set while the subscriber connection is up; DownTracks start
	// forwarding (at a keyframe) only then, so the first packet a subscriber gets decodes.
	subConnected atomic.Bool

	mu     sync.Mutex // guards everything below
	closed bool
	ups    map[*UpTrack]struct{} // the tracks reported by OnTrack
	// layerTracks are the simulcast layers not reported (simulcast.go); sims their
	// sources by stream and track id.
	layerTracks map[*UpTrack]struct{}
	sims        map[string]*simulcast
	alloc       *allocator    // the subscriber link's allocator, started with its first layered subscription
	needQuit    chan struct{} // ends a relay peer's need reporter (need.go); set in NewPeer
	dynQuit     chan struct{} // ends the dynacast goroutine (dynacast.go), started with the first simulcast source
	downs       map[*DownTrack]*webrtc.RTPSender
	slots       map[*Slot]struct{} // fixed receive tracks (slot.go), nil until the first
	offerOut    bool               // a subscriber offer is due (offerDue) or awaits its answer
	offered     bool               // sendOffer has run: the first offer is made (OfferNow)
	renegotiate bool               // something changed while an offer was out
	// renegotiatePrompt: that change is to be offered promptly (else it only removed
	// tracks whose publisher left: removalWait).
	renegotiatePrompt bool
	offerTimer        *time.Timer
	// offerDue is the pending sendOffer of a batch not yet offered (nil once sendOffer
	// starts), and batchFrom when that batch's first change came (scheduleOffer).
	offerDue  *time.Timer
	batchFrom time.Time
	// batchPrompt: the batch due (offerDue) has a change to offer promptly; a batch that
	// only removes tracks whose publisher left waits removalWait before it is offered.
	batchPrompt bool
	// batchQuiet, batchMax and removalWait are subscriberBatch, subscriberBatchMax and
	// subscriberRemovalWait (tests change them, so that a test's pace cannot decide what it
	// asserts).
	batchQuiet, batchMax, removalWait time.Duration
	pendingPub                        []webrtc.ICECandidateInit // candidates that arrived before the remote description
	pendingSub                        []webrtc.ICECandidateInit
	// remoteCands counts the remote candidates given to each connection (by Target) in
	// its current ICE session (remoteUfrag: the remote description's ice-ufrag; an ICE
	// restart changes it and starts the count again). Indexed by Target (0 unused).
	remoteCands [3]int
	remoteUfrag [3]string
}

// MaxRemoteCandidates bounds the remote ICE candidates one endpoint connection takes in
// an ICE session (issue 12, finding 4). A browser sends a few per address (UDP and TCP
// host candidates for each IPv4 and IPv6 address of each interface, server-reflexive,
// relayed): a laptop with three interfaces and privacy addresses sends about 30. Each
// costs the bridge connectivity checks, STUN packets sent to whatever address the
// candidate names, so an endpoint must not add thousands. Relay peers (another bridge,
// authenticated) are not capped.
const MaxRemoteCandidates = 64

// ErrTooManyCandidates refuses a candidate past MaxRemoteCandidates.
var ErrTooManyCandidates = errors.New("too many ICE candidates for one connection")

// NewPeer creates the two connections of an endpoint.
func (b *Bridge) NewPeer(params PeerParams) (*Peer, error) {
	log := params.Logger
	if log == nil {
		log = b.log
	}
	p := &Peer{
		bridge: b, params: params, log: log.With("peer", params.ID),
		ups: map[*UpTrack]struct{}{}, downs: map[*DownTrack]*webrtc.RTPSender{},
		layerTracks: map[*UpTrack]struct{}{},
		batchQuiet:  subscriberBatch, batchMax: subscriberBatchMax, removalWait: subscriberRemovalWait,
	}
	var err error
	p.api = b.api
	if params.Relay {
		p.api = b.relayAPI
	}
	subAPI, keys := p.api, (*dtlsKeys)(nil)
	if b.ownSRTP && !params.Relay && b.hops != nil {
		subAPI, keys = b.subscriberAPI()
	}
	if p.sub, err = p.newConnection(subAPI); err != nil {
		return nil, fmt.Errorf("new subscriber connection: %w", err)
	}
	if b.hops != nil {
		p.subHop = b.hops.Take(p.sub.ID())
	}
	if keys != nil && p.subHop != nil {
		p.startOwnSRTP(keys)
	}
	p.watch(p.sub, Subscriber)
	if params.Relay {
		if _, err := p.newPub(); err != nil {
			_ = p.sub.Close()
			return nil, err
		}
	}
	if params.Relay && !b.silentNeeds {
		p.needQuit = p.startNeeds()
	}
	if m := b.metrics; m != nil {
		m.Peers.Inc()
	}
	b.peerOpened()
	return p, nil
}

// newPub makes the publisher connection if there is none yet, and returns it. The caller
// holds pubNegotiation (or is NewPeer), so two offers never make two.
func (p *Peer) newPub() (*webrtc.PeerConnection, error) {
	if pc := p.publisher(); pc != nil {
		return pc, nil
	}
	pc, err := p.newConnection(p.api)
	if err != nil {
		return nil, fmt.Errorf("new publisher connection: %w", err)
	}
	var hop *hopstats.Interceptor
	if p.bridge.hops != nil {
		hop = p.bridge.hops.Take(pc.ID())
	}
	p.watch(pc, Publisher)
	pc.OnTrack(func(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
		up := newUpTrack(p, pc, remote, receiver)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		report := p.joinSimulcast(up, remote.RID())
		if report {
			p.ups[up] = struct{}{}
		}
		p.mu.Unlock()
		p.log.Info("track published", "track", up.id, "kind", up.kind.String(), "codec", up.codec.MimeType,
			"rid", remote.RID(), "ssrc", up.ssrc)
		go up.readLoop()
		if report && p.params.OnTrack != nil {
			p.params.OnTrack(up)
		}
	})
	p.mu.Lock()
	if p.closed { // Close ran meanwhile and closed what it saw: not this one
		p.mu.Unlock()
		_ = pc.Close()
		return nil, ErrClosed
	}
	p.pub, p.pubHop = pc, hop
	p.mu.Unlock()
	return pc, nil
}

// newConnection makes one of the peer's connections with api, with the bridge's certificate.
func (p *Peer) newConnection(api *webrtc.API) (*webrtc.PeerConnection, error) {
	certs, err := p.bridge.certs.get()
	if err != nil {
		return nil, err
	}
	return peerconn.New(api, webrtc.Configuration{Certificates: certs})
}

// isClosed reports whether Close has run.
func (p *Peer) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// publisher is the publisher connection; nil until the endpoint's first offer.
func (p *Peer) publisher() *webrtc.PeerConnection {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pub
}

func (p *Peer) watch(pc *webrtc.PeerConnection, target Target) {
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil && p.params.OnCandidate != nil {
			p.params.OnCandidate(target, c.ToJSON())
		}
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.log.Debug("connection state", "target", target.String(), "state", s.String())
		if target == Subscriber {
			switch s {
			case webrtc.PeerConnectionStateConnected:
				p.decideOwnSRTP() // before the first packet
				p.subConnected.Store(true)
			case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
				p.subConnected.Store(false)
				if p.own != nil {
					p.own.stop()
				}
			}
		}
		if s == webrtc.PeerConnectionStateFailed {
			err := fmt.Errorf("%s connection failed", target)
			p.log.Warn("peer failed", "target", target.String())
			_ = p.Close()
			if p.params.OnFailed != nil {
				p.params.OnFailed(err)
			}
		}
	})
}

// ID is the peer's id as given in PeerParams.
func (p *Peer) ID() string { return p.params.ID }

// HandleOffer applies the endpoint's offer for the publisher connection and returns the
// answer.
func (p *Peer) HandleOffer(sdp string) (string, error) {
	p.pubNegotiation.Lock()
	defer p.pubNegotiation.Unlock()
	pub, err := p.newPub()
	if err != nil {
		return "", err
	}
	if err := pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadSDP, err)
	}
	p.iceSession(Publisher, sdp)
	answer, err := pub.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("create answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pub)
	if err := pub.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("set local answer: %w", err)
	}
	p.flushCandidates(Publisher)
	waitGathering(gathered)
	return pub.LocalDescription().SDP, nil
}

// HandleAnswer applies the endpoint's answer to the bridge's last subscriber offer.
func (p *Peer) HandleAnswer(sdp string) error {
	p.subNegotiation.Lock()
	defer p.subNegotiation.Unlock()
	p.mu.Lock()
	out := p.offerOut
	p.mu.Unlock()
	if !out {
		return fmt.Errorf("%w: no offer is waiting for an answer", ErrBadSDP)
	}
	answer := webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}
	if err := p.sub.SetRemoteDescription(answer); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSDP, err)
	}
	if p.own != nil {
		// Cryptex as the answer says, as pion's session just did (ownsrtp.go).
		if err := p.own.followCryptex(&answer); err != nil {
			p.log.Warn("own SRTP cannot follow the answer", "err", err)
		}
	}
	p.iceSession(Subscriber, sdp)
	p.flushCandidates(Subscriber)
	p.mu.Lock()
	p.offerOut = false
	if p.offerTimer != nil {
		p.offerTimer.Stop()
	}
	again, prompt := p.renegotiate, p.renegotiatePrompt
	p.renegotiate, p.renegotiatePrompt = false, false
	p.mu.Unlock()
	if again {
		p.scheduleOffer(prompt)
	}
	return nil
}

// Subscribe starts forwarding up to this peer as a track with the given ids. The
// subscriber connection is renegotiated shortly after (changes are batched).
func (p *Peer) Subscribe(up *UpTrack, trackID, streamID string) (*DownTrack, error) {
	d := newDownTrack(up, p, trackID, streamID)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	sender, err := p.sub.AddTrack(d)
	if err != nil {
		p.mu.Unlock()
		return nil, fmt.Errorf("subscribe %s to %s: %w", p.params.ID, up.id, err)
	}
	d.sender = sender
	p.downs[d] = sender
	var alloc *allocator
	// A relayed video may be one layer of a layered source, and a relay link stops a
	// video nobody beyond needs (need.go): the link's allocator sees to both.
	if d.sim != nil || (up.kind == webrtc.RTPCodecTypeVideo && (up.owner.params.Relay || p.params.Relay)) {
		if p.alloc == nil {
			p.alloc = newAllocator(p)
			alloc = p.alloc
		}
	}
	p.mu.Unlock()
	if alloc != nil {
		go alloc.run()
	}
	if d.sim != nil {
		// Start at the lowest layer present: the first picture comes soonest and fits any
		// link; the allocator raises it within a tick or two if the link carries more.
		d.SetLayer(0)
		select {
		case <-up.done:
			p.removeDownTrack(d, true)
			return nil, fmt.Errorf("subscribe %s to %s: %w", p.params.ID, up.id, ErrClosed)
		default:
		}
	} else if err := up.addDown(d); err != nil {
		p.removeDownTrack(d, true)
		return nil, fmt.Errorf("subscribe %s to %s: %w", p.params.ID, up.id, err)
	}
	if m := p.bridge.metrics; m != nil {
		m.DownTracks.Inc()
	}
	go d.readRTCP()
	p.scheduleOffer(true)
	return d, nil
}

// Unsubscribe stops forwarding d. Its renegotiation waits (subscriberRemovalWait) if d's
// publisher has left: a leaving endpoint's subscribers are unsubscribed by signaling as
// its peer closes, in either order.
func (p *Peer) Unsubscribe(d *DownTrack) { p.removeDownTrack(d, !d.up.owner.isClosed()) }

// removeDownTrack stops forwarding d and renegotiates: promptly, or if prompt is false
// (d's publisher left) after removalWait.
func (p *Peer) removeDownTrack(d *DownTrack, prompt bool) {
	d.detach()
	p.mu.Lock()
	sender, ok := p.downs[d]
	delete(p.downs, d)
	closed := p.closed
	p.mu.Unlock()
	if !ok {
		return
	}
	if m := p.bridge.metrics; m != nil {
		m.DownTracks.Dec()
	}
	if closed {
		return
	}
	if err := p.sub.RemoveTrack(sender); err != nil {
		p.log.Debug("remove track", "track", d.id, "err", err)
	}
	p.scheduleOffer(prompt)
}

// UpTracks returns the tracks this peer publishes.
func (p *Peer) UpTracks() []*UpTrack {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Collect(maps.Keys(p.ups))
}

// DownTracks returns the tracks forwarded to this peer.
func (p *Peer) DownTracks() []*DownTrack {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Collect(maps.Keys(p.downs))
}

func (p *Peer) trackEnded(t *UpTrack) {
	p.mu.Lock()
	_, ok := p.ups[t]
	delete(p.ups, t)
	delete(p.layerTracks, t)
	p.mu.Unlock()
	if ok && p.params.OnTrackEnded != nil {
		p.params.OnTrackEnded(t)
	}
}

// Close ends both connections. Published tracks end, which removes them from every
// subscriber; this peer's subscriptions are dropped.
func (p *Peer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	if p.offerTimer != nil {
		p.offerTimer.Stop()
	}
	if p.offerDue != nil { // a batch of removals may wait seconds; the peer need not
		p.offerDue.Stop()
	}
	downs := p.downs
	p.downs = map[*DownTrack]*webrtc.RTPSender{}
	slots := p.slots
	p.slots = nil
	pub := p.pub
	p.mu.Unlock()
	for s := range slots {
		s.detach()
	}
	if p.alloc != nil {
		p.alloc.stop()
	}
	if p.needQuit != nil {
		close(p.needQuit)
	}
	if p.dynQuit != nil {
		close(p.dynQuit)
	}
	for d := range downs {
		d.detach()
		if m := p.bridge.metrics; m != nil {
			m.DownTracks.Dec()
		}
	}
	var err error
	if pub != nil {
		err = pub.Close()
	}
	err = errors.Join(err, p.sub.Close())
	if m := p.bridge.metrics; m != nil {
		m.Peers.Dec()
	}
	p.bridge.peerClosed()
	if err != nil {
		return fmt.Errorf("close peer %s: %w", p.params.ID, err)
	}
	return nil
}

// HopStats returns the peer's link as one hop, from its own transport: In is what the
// endpoint (or relay peer) sends here, measured on the publisher connection; Out is what
// this bridge sends it, on the subscriber connection, with the round-trip time.
func (p *Peer) HopStats() hopstats.Stats {
	var s hopstats.Stats
	p.mu.Lock()
	pubHop := p.pubHop
	p.mu.Unlock()
	if pubHop != nil {
		s.In = pubHop.Stats().In
	}
	if p.subHop != nil {
		sub := p.subHop.Stats()
		s.Out, s.RTTSum, s.RTTSamples, s.RTTDropped, s.RTTMax = sub.Out, sub.RTTSum, sub.RTTSamples, sub.RTTDropped, sub.RTTMax
	}
	return s
}
