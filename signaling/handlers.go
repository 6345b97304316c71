package signaling

// The handlers of the messages an endpoint sends, and the session's side of its peer on
// the bridge (peerOwner). The socket's lifecycle is in session.go.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/bridge"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/rooms"
)

// maxTrackSources bounds a session's record of described tracks (protocol allows 16 per
// offer).
const maxTrackSources = 64

func newParticipantID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "p" + hex.EncodeToString(b[:])
}

func (s *session) handleJoin(env protocol.Envelope) (err error) {
	if s.claims != nil {
		return clientErr(protocol.CodeBadMessage, "already joined")
	}
	tm := joinTimes{start: time.Now()}
	tm.socket = tm.start.Sub(s.opened)
	defer func() {
		// A join that fails on our side, once the session has its identity (no bridge
		// to place it on, the store or a bridge failing), must not leave it half-joined:
		// identity set, no peer, no place in the meeting, a second join refused. The
		// socket is closed so the client comes back with a fresh session.
		var ce *closeError
		var re *requestError
		if err == nil || errors.As(err, &ce) || errors.As(err, &re) || s.claims == nil {
			return
		}
		s.log.Error("join failed", "err", err)
		s.reject(env.ID, protocol.CodeInternal, "the join failed on the server; try again")
		err = &closeError{code: websocket.CloseTryAgainLater, reason: "join failed"}
	}()
	var j protocol.Join
	if err := decodeData(env, &j); err != nil {
		return err
	}
	if !protocol.ValidDevice(j.Device) {
		return clientErr(protocol.CodeBadMessage, "device: up to %d letters, digits, '-' and '_'", protocol.MaxDeviceLen)
	}
	if !protocol.ValidVideoCodecs(j.VideoCodecs) {
		return clientErr(protocol.CodeBadMessage, "video_codecs: %q and %q, each at most once", protocol.VideoCodecH264,
			protocol.VideoCodecVP8)
	}
	claims, err := s.srv.cfg.Keys.Verify(j.Token, auth.UseJoin)
	if err != nil {
		s.log.Info("join refused", "err", err)
		s.reject(env.ID, protocol.CodeUnauthorized, "invalid or expired token")
		return &closeError{code: protocol.CloseUnauthorized, reason: "unauthorized"}
	}
	if claims.Meeting == "" {
		s.reject(env.ID, protocol.CodeForbidden, "token does not name a meeting")
		return &closeError{code: protocol.CloseUnauthorized, reason: "no meeting"}
	}
	if err := s.admitToken(env.ID, j.Token, claims); err != nil {
		return err
	}
	if forwarded, err := s.routeJoin(env, claims); forwarded || err != nil {
		return err // forwarded: the owner answers the join
	}
	tm.verified = time.Now()
	// The token's name wins: a client must not be shown to others as the chair. Only a
	// token that names no one lets the client pick its display name (an ad hoc join).
	name := claims.Name
	if name == "" {
		name = j.Name
	}
	if name == "" {
		name = claims.Site
	}
	// The session's identity, logger and meeting are written here, on the reader
	// goroutine, before anything else can see the session: under s.mu (close may run on
	// another goroutine meanwhile) and before the router hands the session to a bridge's
	// goroutines (router.set publishes them).
	// A resume token (resume.go) keeps the participant id, and names the peer to adopt.
	var resume *resumeClaims
	if j.Resume != "" {
		rc, err := s.srv.verifyResume(j.Resume, j.Token, claims, time.Now())
		if err != nil {
			s.log.Info("resume token refused; joining anew", "err", err)
		} else {
			resume = &rc
		}
	}
	pid := ids.ParticipantID(newParticipantID())
	if resume != nil {
		pid = ids.ParticipantID(resume.Participant)
	}
	self := protocol.Participant{ID: string(pid), Name: name, Site: claims.Site, Role: string(claims.Role),
		VideoCodecs: j.VideoCodecs}
	if t := s.srv.tree.Load(); t != nil {
		if site, ok := t.Site(claims.Site); ok {
			self.SiteName = site.Name
		}
	}
	self.Streams = map[protocol.Source]string{
		protocol.SourceCamera: ids.StreamKey{Participant: pid, Source: protocol.SourceCamera}.String(),
		protocol.SourceScreen: ids.StreamKey{Participant: pid, Source: protocol.SourceScreen}.String(),
	}
	s.mu.Lock()
	s.claims, s.self, s.joinDigest = claims, self, joinDigest(j.Token)
	s.slots = j.Slots
	if claims.Endpoint != "" {
		s.device = j.Device // only an endpoint's session has a device to protect
	}
	s.log = s.log.With("meeting", claims.Meeting, "participant", self.ID, "site", claims.Site, "role", claims.Role)
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sched, found, err := s.srv.openScheduled(ctx, claims.Meeting)
	if err != nil {
		return fmt.Errorf("join meeting %s: %w", claims.Meeting, err)
	}
	var schedPtr *rooms.Meeting
	switch {
	case found:
		if err := admit(sched, claims, time.Now()); err != nil {
			s.reject(env.ID, protocol.CodeForbidden, err.Error())
			return &closeError{code: protocol.CloseMeetingEnded, reason: "meeting not open"}
		}
		schedPtr = &sched
	case s.srv.cfg.Store != nil && !s.srv.cfg.AdHocMeetings:
		s.reject(env.ID, protocol.CodeForbidden, fmt.Sprintf("meeting %q is not scheduled", claims.Meeting))
		return &closeError{code: protocol.CloseMeetingEnded, reason: "meeting not scheduled"}
	}
	m, err := s.srv.meetingFor(ids.MeetingID(claims.Meeting), schedPtr)
	if err != nil {
		return &closeError{code: websocket.CloseGoingAway, reason: "server shutting down"}
	}
	defer s.srv.joinDone(m)
	tm.opened = time.Now()
	if j.SlotsAuto && !j.Slots && m.wantsSlots(s.srv.cfg.SlotsFrom, schedPtr) {
		s.mu.Lock()
		s.slots = true
		s.mu.Unlock()
	}
	if m.full(s.srv.cfg.MaxParticipants) {
		s.log.Warn("join refused: meeting full", "limit", s.srv.cfg.MaxParticipants)
		s.srv.cfg.Metrics.limited(limitParticipants)
		s.reject(env.ID, protocol.CodeCapacity, "the meeting has as many participants as it may")
		return &closeError{code: websocket.CloseTryAgainLater, reason: "meeting full"}
	}
	s.mu.Lock()
	s.meeting = m
	s.generation, s.joined = 1, time.Now()
	s.setPlace(nil, ids.ForEndpoint(pid, 1))
	s.mu.Unlock()
	var b Bridge
	if resume != nil {
		var st *protocol.PeerState
		b, st, err = s.adoptPeer(ctx, *resume)
		s.srv.cfg.Metrics.resumed(err == nil)
		if err != nil {
			s.log.Info("resume: the peer cannot be adopted; the endpoint renegotiates", "err", err)
		} else {
			s.mu.Lock()
			s.adopted = st
			s.mu.Unlock()
		}
	}
	if b == nil {
		b, err = s.placePeer(ctx, ids.SiteID(claims.Site))
	}
	if errors.Is(err, errBridgesFull) {
		return s.refuseFull(env.ID)
	}
	if err != nil {
		return fmt.Errorf("join meeting %s: %w", claims.Meeting, err)
	}
	tm.placed = time.Now()
	var ice []protocol.ICEServer
	if f := s.srv.cfg.ICEServers; f != nil {
		ice = f(b.ID(), ids.ParticipantID(s.self.ID))
	}
	if err := m.add(s, func(others []protocol.Participant, floor *protocol.FloorState) {
		s.replyJoined(env.ID, protocol.Joined{Meeting: claims.Meeting, Self: s.self, Participants: others,
			Floor: floor, ICEServers: ice, Resume: s.resumeToken(), Resumed: s.adopted != nil, Slots: s.slots})
		s.sendRecording(claims.Meeting)
	}); err != nil {
		s.srv.router.set(b, s.peerID, nil)
		if err := b.ClosePeer(s.peerID); err != nil {
			s.log.Debug("close peer", "err", err)
		}
		if errors.Is(err, errEndpointInUse) {
			s.log.Warn("join refused: the room's own device is connected", "endpoint", claims.Endpoint)
			s.reject(env.ID, protocol.CodeEndpointInUse, "this room is connected from its own device")
			return &closeError{code: protocol.CloseEndpointInUse, reason: "endpoint in use"}
		}
		return nil // closing already: run's loop ends when the writer closes the socket
	}
	tm.added, tm.lockWait = time.Now(), s.lockWait
	if mt := s.srv.cfg.Metrics; mt != nil {
		mt.Joins.Inc()
	}
	s.srv.cfg.Metrics.joinPhases(&tm)
	s.log.Info("joined", append([]any{"name", name, "bridge", b.ID(), "resumed", s.adopted != nil}, tm.logAttrs()...)...)
	return nil
}

// migrate moves the endpoint to a new bridge after its bridge failed: a new peer there,
// and a reconnect message so the endpoint renegotiates both connections. Caller holds
// meeting.mu.
func (s *session) migrate() {
	old := s.bridge
	s.srv.router.set(old, s.peerID, nil)
	b, err := s.srv.focus.place(ids.SiteID(s.claims.Site))
	if err != nil {
		s.log.Error("no bridge to move to", "err", err)
		go s.close(websocket.CloseGoingAway, "no bridge available")
		return
	}
	s.generation++
	s.setPlace(b, ids.ForEndpoint(ids.ParticipantID(s.self.ID), s.generation))
	peer := s.peerID
	resume := s.resumeToken()
	s.srv.router.set(b, peer, s)
	// The new peer is created on the meeting's op queue, before any subscription
	// reconcile queues for it, and without the meeting's lock.
	s.meeting.ops.push(func() {
		if err := b.CreatePeer(peer); err != nil {
			s.log.Error("move to bridge", "bridge", b.ID(), "err", err)
			go s.close(websocket.CloseGoingAway, "no bridge available")
			return
		}
		// close may have run while this op waited in the queue: it closed this peer
		// before the peer existed, so the one just made would outlive the session. close
		// sets closing before it closes the peer, so either it sees the peer or this does.
		if s.closing.Load() {
			if err := b.ClosePeer(peer); err != nil {
				s.log.Debug("close peer", "err", err)
			}
			return
		}
		s.applyPeerOptions(b, peer)
		s.log.Info("moved to another bridge", "from", old.ID(), "to", b.ID())
		s.reply(protocol.KindReconnect, "", protocol.Reconnect{Reason: "bridge " + string(old.ID()) + " failed", Resume: resume})
	})
	s.pushView() // the page's view holds on the new bridge too
}

// where returns the endpoint's bridge and peer (they change on migration), without the
// meeting's lock (see session.placed).
func (s *session) where() (Bridge, ids.PeerID) {
	p := s.placed.Load()
	if p == nil {
		return nil, ids.PeerID{}
	}
	return p.bridge, p.peer
}

func (s *session) handleOffer(env protocol.Envelope, o protocol.Offer) error {
	if s.receiveOnly {
		return clientErr(protocol.CodeForbidden, "a viewer does not publish")
	}
	keys := map[string]ids.StreamKey{}
	s.mu.Lock()
	// trackSources remembers what earlier offers described (a renegotiation may not
	// describe again); bounded, since track ids are the client's to choose.
	if len(s.trackSources)+len(o.Tracks) > maxTrackSources {
		clear(s.trackSources)
	}
	for _, t := range o.Tracks {
		s.trackSources[t.ID] = t.Source
	}
	// Every track in the SDP gets a stream key, described or not.
	// The offer parsed when it was decoded; this cannot fail.
	tracks, _ := protocol.ParseSDP(o.SDP, protocol.MaxOfferMedia)
	for _, t := range tracks {
		src, ok := s.trackSources[t.ID]
		if !ok {
			src = protocol.SourceCamera
			if t.Kind == "audio" {
				src = protocol.SourceMicrophone
			}
		}
		keys[t.ID] = ids.StreamKey{Participant: ids.ParticipantID(s.self.ID), Source: src}
	}
	s.mu.Unlock()
	b, peer := s.where()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answer, err := b.Offer(ctx, peer, o.SDP, keys)
	if err != nil {
		if errors.Is(err, bridge.ErrBadSDP) {
			return clientErr(protocol.CodeBadSDP, "%v", err)
		}
		return fmt.Errorf("publisher offer: %w", err)
	}
	s.reply(protocol.KindAnswer, env.ID, protocol.Answer{SDP: answer})
	return nil
}

func (s *session) handleAnswer(env protocol.Envelope, a protocol.Answer) error {
	b, peer := s.where()
	if err := b.Answer(peer, a.SDP); err != nil {
		return clientErr(protocol.CodeBadSDP, "%v", err)
	}
	return nil
}

func (s *session) handleCandidate(env protocol.Envelope, c protocol.Candidate) error {
	if c.Candidate.Candidate == "" {
		return nil // end of candidates
	}
	b, peer := s.where()
	if err := b.AddCandidate(peer, c.Target, c.Candidate); err != nil {
		return clientErr(protocol.CodeBadMessage, "%v", err)
	}
	return nil
}

func (s *session) handleMute(env protocol.Envelope, m protocol.Mute) error {
	s.mu.Lock()
	if m.Muted {
		s.muted[m.Source] = true
	} else {
		delete(s.muted, m.Source)
	}
	s.mu.Unlock()
	s.meeting.updated(s)
	return nil
}

func (s *session) handleLeave(protocol.Envelope) error { return errLeave }

func (s *session) handlePing(env protocol.Envelope) error {
	s.reply(protocol.KindPong, env.ID, nil)
	return nil
}

// participant returns the participant as others see it now.
func (s *session) participant() protocol.Participant {
	p := s.self
	s.mu.Lock()
	for _, src := range []protocol.Source{protocol.SourceMicrophone, protocol.SourceCamera, protocol.SourceScreen} {
		if s.muted[src] {
			p.Muted = append(p.Muted, src)
		}
	}
	s.mu.Unlock()
	return p
}

// sourceOf says what a stream carries: its key's source, else what its kind suggests.
func sourceOf(key ids.StreamKey, kind string) protocol.Source {
	if key.Source.Valid() {
		return key.Source
	}
	if kind == "audio" {
		return protocol.SourceMicrophone
	}
	return protocol.SourceCamera
}

// The session owns its endpoint's peer on the bridge (peerOwner).

func (s *session) current(b Bridge, peer ids.PeerID) bool {
	cb, cp := s.where()
	return cb == b && cp == peer
}

func (s *session) peerOffer(b Bridge, peer ids.PeerID, sdp string) {
	if s.current(b, peer) {
		s.srv.cfg.Metrics.subscriberOffer()
		s.reply(protocol.KindOffer, "", protocol.Offer{SDP: sdp})
	}
}

func (s *session) peerCandidate(b Bridge, peer ids.PeerID, t protocol.Target, c protocol.ICECandidate) {
	if s.current(b, peer) {
		s.reply(protocol.KindCandidate, "", protocol.Candidate{Target: t, Candidate: c})
	}
}

func (s *session) trackPublished(b Bridge, _ ids.PeerID, key ids.StreamKey, kind string) {
	s.meeting.published(s, b, key, kind)
}

func (s *session) trackEnded(b Bridge, _ ids.PeerID, key ids.StreamKey) {
	s.meeting.unpublished(s, b, key)
}

func (s *session) peerFailed(b Bridge, peer ids.PeerID, reason string) {
	if !s.current(b, peer) {
		return
	}
	if reason == bridge.FullReason {
		// The bridge refused the peer a move asked for (it filled up meanwhile): the
		// endpoint comes back, and is placed elsewhere.
		s.srv.focus.markFull(b.ID())
	}
	s.log.Warn("media connection failed", "reason", reason)
	go s.close(websocket.CloseGoingAway, "media connection failed")
}
