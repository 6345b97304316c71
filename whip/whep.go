package whip

// WHEP egress (draft-ietf-wish-whep): a player (a WHEP page, a restreamer) receives one
// audio and one video track of a meeting with one HTTP POST of a receive-only offer.
//
//	POST    /whep/{meeting}         the floor holder (or the chair's site), else anyone
//	POST    /whep/{meeting}/{site}  that site's camera and microphone
//	DELETE  /whep/{meeting}/{site}/{id} (or /whep/{meeting}/-/{id}) → 204
//	PATCH   /whep/{meeting}/{site}/{id}  trickle-ice-sdpfrag, If-Match → 204 (patch.go)
//
// A viewer is an endpoint attached to signaling like the WHIP encoder, so it is admitted,
// placed and counted as any participant of its token's site; it publishes nothing. Its
// bridge peer's subscriber connection is answered by a pion connection here (upstream),
// and the streams chosen are copied, packet by packet, onto the player's connection
// (downstream) with pion's TrackLocalStaticRTP, which rewrites SSRC and payload type. On
// a switch a keyframe is asked for upstream. Video is VP8 (what browsers and the WHIP
// encoders here send); a stream in another codec is not forwarded.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/attachrtc"
	"github.com/cau-project/cau/internal/httpapi"
	"github.com/cau-project/cau/internal/peerconn"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/signaling"
)

// WHEPPrefix is the path under which the gateway serves WHEP.
const WHEPPrefix = "/whep/"

// viewer is one WHEP player. Its identity fields are set before it is put in the map.
type viewer struct {
	g                 *Gateway
	id, meeting, site string
	etag, ufrag       string // the resource's version; the player offer's ICE username fragment
	tokenHash         [32]byte
	ep                *signaling.Attached
	up, down          *webrtc.PeerConnection
	video, audio      *webrtc.TrackLocalStaticRTP
	events            chan protocol.Envelope // from the endpoint, for run
	closeOnce         sync.Once
	closed            bool // guarded by Gateway.mu: set by close, keeps the viewer out of the map

	mu      sync.Mutex                     // guards everything below
	sites   map[string]string              // stream id → site of its participant
	floor   []string                       // sites in order of preference (floor speakers, chair)
	remotes map[*webrtc.TrackRemote]string // live upstream tracks → their stream id
	// chosen holds, per kind (kindIndex), the track forwarded: written by choose under
	// mu, read without it by the forwarding loops, one load per packet.
	chosen [2]atomic.Pointer[webrtc.TrackRemote]
}

func whepRoutes(g *Gateway) map[httpapi.Route]http.HandlerFunc {
	del, patch := g.sessionHandlers("WHEP", lookupIn(g.viewers))
	return map[httpapi.Route]http.HandlerFunc{
		{Method: http.MethodPost, Path: WHEPPrefix + "{meeting}"}:                g.createViewer,
		{Method: http.MethodPost, Path: WHEPPrefix + "{meeting}/{site}"}:         g.createViewer,
		{Method: http.MethodOptions, Path: WHEPPrefix + "{meeting}"}:             g.options,
		{Method: http.MethodOptions, Path: WHEPPrefix + "{meeting}/{site}"}:      g.options,
		{Method: http.MethodOptions, Path: WHEPPrefix + "{meeting}/{site}/{id}"}: g.options,
		{Method: http.MethodDelete, Path: WHEPPrefix + "{meeting}/{site}/{id}"}:  del,
		{Method: http.MethodPatch, Path: WHEPPrefix + "{meeting}/{site}/{id}"}:   patch,
		{Method: http.MethodGet, Path: WHEPPrefix + "{meeting}"}:                 g.notAllowed,
		{Method: http.MethodGet, Path: WHEPPrefix + "{meeting}/{site}"}:          g.notAllowed,
		{Method: http.MethodGet, Path: WHEPPrefix + "{meeting}/{site}/{id}"}:     g.notAllowed,
		{Method: http.MethodPost, Path: WHEPPrefix + "{meeting}/{site}/{id}"}:    g.notAllowed,
	}
}

func (g *Gateway) mediaAPI() *webrtc.API {
	g.apiOnce.Do(func() {
		me := &webrtc.MediaEngine{}
		_ = me.RegisterDefaultCodecs() // fixed codec table: cannot fail
		se := webrtc.SettingEngine{}
		// No mDNS: nobody here resolves .local names, and each peer connection would open
		// multicast sockets and a reader goroutine for it (leaked past Close on a loaded box).
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
		se.SetIncludeLoopbackCandidate(g.cfg.Loopback)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		// No NACK or report interceptors: the bridge repairs the upstream leg, and the
		// player's RTCP is read here only for keyframe requests.
		g.api = webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se))
	})
	return g.api
}

// createViewer answers a player's offer and joins the meeting on its behalf.
func (g *Gateway) createViewer(w http.ResponseWriter, r *http.Request) {
	httpapi.SetHeaders(w)
	cors(w)
	meeting, site := r.PathValue("meeting"), r.PathValue("site")
	if site == "-" {
		site = ""
	}
	tok, offer, ok := g.readOffer(w, r, meeting)
	if !ok {
		return
	}
	if g.Count() >= g.cfg.MaxResources {
		g.fail(w, r, http.StatusServiceUnavailable, httpapi.CodeUnavailable, "too many WHIP/WHEP sessions on this server")
		return
	}
	v := &viewer{g: g, id: newID(), meeting: meeting, site: site, etag: `"` + newID() + `"`, ufrag: iceUfrag(offer),
		tokenHash: sha256.Sum256([]byte(tok)),
		events:    make(chan protocol.Envelope, 64), sites: map[string]string{},
		remotes: map[*webrtc.TrackRemote]string{}}
	answer, err := v.openDown(offer)
	if err != nil {
		v.close()
		g.fail(w, r, http.StatusBadRequest, httpapi.CodeBadRequest, err.Error())
		return
	}
	if v.up, err = peerconn.New(g.mediaAPI(), webrtc.Configuration{}); err != nil {
		v.close()
		g.fail(w, r, http.StatusInternalServerError, httpapi.CodeInternal, "upstream connection: "+err.Error())
		return
	}
	v.up.OnTrack(v.onTrack)
	v.ep = g.cfg.Signaling.Attach(signaling.AttachOptions{Remote: r.RemoteAddr, ReceiveOnly: true,
		OnEvent: func(env protocol.Envelope) {
			select {
			case v.events <- env:
			default:
				g.log.Warn("whep viewer: event queue full; closing", "resource", v.id)
				go v.close()
			}
		},
		OnClose: func(int, string) { go v.close() }})
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	var joined protocol.Joined
	if st, code, msg, failed := ask(ctx, v.ep, protocol.KindJoin, protocol.Join{Token: tok}, &joined, "join reply"); failed {
		v.close()
		g.fail(w, r, st, code, msg)
		return
	}
	v.mu.Lock()
	for _, p := range joined.Participants {
		v.learn(p)
	}
	v.setFloor(joined.Floor)
	v.mu.Unlock()
	g.mu.Lock()
	if !v.closed { // a close that ran already (the meeting ended) must not be undone
		g.viewers[v.id] = v
	}
	g.mu.Unlock()
	go v.run()
	sel := site
	if sel == "" {
		sel = "-"
	}
	h := w.Header()
	h.Set("Location", WHEPPrefix+meeting+"/"+sel+"/"+v.id)
	h.Set("ETag", v.etag)
	h.Set("Accept-Patch", TrickleType)
	h.Set("Content-Type", "application/sdp")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
	g.log.Info("whep viewer joined", "meeting", meeting, "resource", v.id, "participant", joined.Self.ID, "follows", site)
}

// readOffer does the checks WHIP and WHEP share: the token (for this meeting), the
// content type, the size and the SDP.
func (g *Gateway) readOffer(w http.ResponseWriter, r *http.Request, meeting string) (tok, offer string, ok bool) {
	tok, err := httpapi.BearerToken(r)
	if err != nil {
		g.fail(w, r, http.StatusUnauthorized, httpapi.CodeUnauthorized, err.Error())
		return "", "", false
	}
	claims, err := g.cfg.Keys.Verify(tok, auth.UseJoin)
	if err != nil {
		g.fail(w, r, http.StatusUnauthorized, httpapi.CodeUnauthorized, "invalid or expired token")
		return "", "", false
	}
	if claims.Meeting != meeting {
		g.fail(w, r, http.StatusForbidden, httpapi.CodeForbidden, "the token is for another meeting")
		return "", "", false
	}
	if !isSDP(r.Header.Get("Content-Type")) {
		g.fail(w, r, http.StatusUnsupportedMediaType, httpapi.CodeUnsupportedType, "the body must be an application/sdp offer")
		return "", "", false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxOfferBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			g.fail(w, r, http.StatusRequestEntityTooLarge, httpapi.CodeTooLarge, fmt.Sprintf("the offer is larger than %d bytes", MaxOfferBytes))
		} else {
			g.fail(w, r, http.StatusBadRequest, httpapi.CodeBadRequest, "reading the offer: "+err.Error())
		}
		return "", "", false
	}
	offer = string(body)
	if _, err := protocol.ParseSDP(offer, protocol.MaxOfferMedia); err != nil {
		g.fail(w, r, http.StatusBadRequest, httpapi.CodeBadRequest, err.Error())
		return "", "", false
	}
	if missing := missingICE(offer); missing != "" {
		// Checked before the join, so that others do not see the client come and go.
		g.fail(w, r, http.StatusBadRequest, httpapi.CodeBadRequest, "the offer has no "+missing)
		return "", "", false
	}
	return tok, offer, true
}

// openDown answers the player's offer with one video and one audio track.
func (v *viewer) openDown(offer string) (string, error) {
	var err error
	if v.down, err = peerconn.New(v.g.mediaAPI(), webrtc.Configuration{}); err != nil {
		return "", fmt.Errorf("player connection: %w", err)
	}
	v.down.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed {
			go v.close()
		}
	})
	if err := v.down.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("the offer: %w", err)
	}
	if v.video, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "cau"); err != nil {
		return "", err
	}
	if v.audio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "audio", "cau"); err != nil {
		return "", err
	}
	for _, t := range []*webrtc.TrackLocalStaticRTP{v.video, v.audio} {
		s, err := v.down.AddTrack(t)
		if err != nil {
			return "", fmt.Errorf("the offer cannot receive %s: %w", t.Kind(), err)
		}
		go v.readPlayerRTCP(s, t.Kind())
	}
	answer, err := v.down.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(v.down)
	if err := v.down.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("answer: %w", err)
	}
	select {
	case <-gathered:
	case <-time.After(2 * time.Second):
	}
	return v.down.LocalDescription().SDP, nil
}

// readPlayerRTCP passes the player's keyframe requests upstream.
func (v *viewer) readPlayerRTCP(s *webrtc.RTPSender, kind webrtc.RTPCodecType) {
	client.ReadKeyframeRequests(s, func() { v.keyframe(v.chosen[kindIndex(kind)].Load()) })
}

func (v *viewer) keyframe(t *webrtc.TrackRemote) {
	if t == nil || t.Kind() != webrtc.RTPCodecTypeVideo {
		return
	}
	_ = v.up.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(t.SSRC())}})
}

// run handles the endpoint's events in order: the bridge's subscriber offers are
// answered by the upstream connection, and membership and floor changes re-choose.
func (v *viewer) run() {
	for {
		select {
		case env := <-v.events:
			v.event(env)
		case <-v.ep.Done():
			return
		}
	}
}

func (v *viewer) event(env protocol.Envelope) {
	// The viewer publishes nothing: only the subscriber connection is negotiated.
	if handled, err := attachrtc.HandleMedia(env, v.ep, v.up, nil); handled {
		if err != nil {
			v.g.log.Warn("whep viewer: answering the bridge", "resource", v.id, "err", err)
		}
		return
	}
	switch env.Kind {
	case protocol.KindRoster:
		var r protocol.Roster
		if protocol.DecodeData(env, &r) == nil {
			v.mu.Lock()
			for _, p := range r.Participants {
				v.learn(p)
			}
			v.choose()
			v.mu.Unlock()
		}
	case protocol.KindFloor:
		var f protocol.FloorState
		if protocol.DecodeData(env, &f) == nil {
			v.mu.Lock()
			v.setFloor(&f)
			v.choose()
			v.mu.Unlock()
		}
	}
}

// learn records the sites of p's streams. Caller holds v.mu.
func (v *viewer) learn(p protocol.Participant) {
	for _, sid := range p.Streams {
		v.sites[sid] = p.Site
	}
}

// setFloor records which sites the default view follows. Caller holds v.mu.
func (v *viewer) setFloor(f *protocol.FloorState) {
	v.floor = v.floor[:0]
	if f == nil {
		return
	}
	for _, s := range f.Speakers {
		v.floor = append(v.floor, s.Site)
	}
	if f.ChairSite != "" {
		v.floor = append(v.floor, f.ChairSite)
	}
}

func (v *viewer) onTrack(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	v.mu.Lock()
	v.remotes[t] = t.StreamID()
	v.choose()
	v.mu.Unlock()
	local := v.audio
	if t.Kind() == webrtc.RTPCodecTypeVideo {
		local = v.video
	}
	codecOK := t.Codec().MimeType == local.Codec().MimeType
	buf := make([]byte, 1500)
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			break
		}
		if codecOK && v.chosen[kindIndex(t.Kind())].Load() == t {
			_, _ = local.Write(buf[:n])
		}
	}
	v.mu.Lock()
	delete(v.remotes, t)
	v.choose()
	v.mu.Unlock()
}

// choose picks, for each kind, the track to forward: the named site's, else the first
// floor speaker's or the chair's, else the one chosen already, else any. A new choice
// asks for a keyframe. Caller holds v.mu.
func (v *viewer) choose() {
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		want := v.floor
		if v.site != "" {
			want = []string{v.site}
		}
		var pick *webrtc.TrackRemote
		for _, site := range want {
			for t, sid := range v.remotes {
				if t.Kind() == kind && v.sites[sid] == site {
					pick = t
					break
				}
			}
			if pick != nil {
				break
			}
		}
		slot := &v.chosen[kindIndex(kind)]
		if cur := slot.Load(); pick == nil && v.site == "" {
			if _, live := v.remotes[cur]; live {
				pick = cur
			} else {
				for t := range v.remotes {
					if t.Kind() == kind {
						pick = t
						break
					}
				}
			}
		}
		if pick != slot.Load() {
			slot.Store(pick)
			go v.keyframe(pick)
		}
	}
}

// kindIndex is a kind's slot in viewer.chosen.
func kindIndex(k webrtc.RTPCodecType) int {
	if k == webrtc.RTPCodecTypeVideo {
		return 0
	}
	return 1
}

// close ends the viewer: its endpoint leaves, both connections close. Any goroutine.
func (v *viewer) close() {
	v.closeOnce.Do(func() {
		v.g.mu.Lock()
		_, live := v.g.viewers[v.id]
		delete(v.g.viewers, v.id)
		v.closed = true
		v.g.mu.Unlock()
		if v.ep != nil {
			v.ep.Close()
		}
		for _, pc := range []*webrtc.PeerConnection{v.up, v.down} {
			if pc != nil {
				_ = pc.Close()
			}
		}
		if live {
			v.g.log.Info("whep viewer left", "meeting", v.meeting, "resource", v.id)
		}
	})
}
