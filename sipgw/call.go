package sipgw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/golang-jwt/jwt/v5"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/attachrtc"
	"github.com/cau-project/cau/internal/peerconn"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/signaling"
)

// call is one room in one meeting: its SIP dialog, its two RTP legs with the room, and
// its endpoint in the meeting with the endpoint's two connections to the bridge.
//
// Set-up (open) runs on the INVITE's handler goroutine; after start, each socket and
// each received track has its reader goroutine, and run handles the endpoint's events.
type call struct {
	g       *Gateway
	id      string // Call-ID
	meeting string
	name    string // shown in the meeting: the caller's display name, else its user
	// site and endpoint are who the call joins as: the gateway's site and no endpoint for
	// a call dialled in, the registry's room for a call the gateway placed (dialer.go).
	site, endpoint string
	log            *slog.Logger
	dlg            dialog
	// inbound is dlg for a call the room placed (nil for one the gateway placed): its
	// INVITE is answered through it.
	inbound *sipgo.DialogServerSession
	// peer is the room's Contact, where in-dialog requests go; source the address its
	// SIP came from. Both set by the constructor.
	peer   sip.Uri
	source string
	// transport is the SIP transport of the dialog (UDP, TCP, TLS), set with peer.
	transport string
	contact   sip.ContactHeader // ours, for responses in the dialog
	sdpID     uint64
	// sdpVersion is the o= version of our latest description (update). Guarded by mu.
	sdpVersion uint64

	audio, video *leg // set by open, closed by close

	ep       *signaling.Attached
	pub, sub *webrtc.PeerConnection
	// toMeetingVideo carries the room's H.264 as it came; toMeetingAudio its voice in
	// Opus. Written by the room's reader goroutines.
	toMeetingVideo *webrtc.TrackLocalStaticRTP
	toMeetingAudio *webrtc.TrackLocalStaticRTP
	events         chan protocol.Envelope // the endpoint's events, for run

	mu       sync.Mutex // guards sdpLocal, sdpRemote, follow, fwdVideo and nextVideo (writes), answered, ep (its write)
	sdpLocal []byte
	// sdpRemote is the room's description (its offer, or the answer in its ACK).
	sdpRemote *description
	// follow is what chooses the room's video (follow.go).
	follow following
	// fwdVideo is the meeting video the room is sent; nextVideo the one it switches to at
	// that one's next keyframe (nil: no switch pending). Loaded per packet.
	fwdVideo, nextVideo atomic.Pointer[webrtc.TrackRemote]
	// switchAt is when the pending switch was decided, switchAsked when its keyframe was
	// last asked for (unix nanos).
	switchAt, switchAsked atomic.Int64
	// mix sums the meeting's voices for the room (mix.go).
	mix *mixer
	// rate is the audio sample rate of the room's codec (g711Rate, or g722Rate for
	// G.722): the rate the meeting's Opus is decoded to and the room's encoded from. Set
	// by setRate before the call joins (its tracks and media goroutines read it), then
	// fixed: a re-INVITE may not change it.
	rate int
	// answered is set by start: the call counts in cau_sip_calls_active until close.
	answered bool
	// session is the call's session timer (timer.go).
	session sessionTimer
	// peerAllow is the room's Allow header (from its INVITE): the methods it takes.
	peerAllow string
	// ackDone is set once the room's ACK came (or the 200 went unacknowledged); a hang-up
	// before that sets byePending, and the BYE waits for it (answer).
	ackDone, byePending bool

	// roomAudio and roomVideo are the room's streams as negotiated (setRemote), loaded
	// per packet by the forwarding goroutines.
	roomAudio, roomVideo atomic.Pointer[media]
	// audioSSRC and videoSSRC are what the room receives from; set by newCall.
	audioSSRC, videoSSRC uint32
	audioOut             audioClock
	videoOut             rewriter

	roomVideoSSRC atomic.Uint32 // the room's video SSRC, from its RTP (for PLI)
	lastFastReq   atomic.Int64  // unix nanos of the last keyframe request sent to the room
	// firSeq numbers FIRs; written only by the one keyframeToRoom that wins lastFastReq.
	firSeq uint8

	packets packetCounters
	// audioStats and videoStats count each leg's RTP for RTCP and the link's figures
	// (rtcpstats.go).
	audioStats, videoStats legStats
	// state is the call's (stateActive, stateHeld, stateEnded; "" before start). Guarded by mu.
	state string
	// videoLayer is the simulcast layer cap the room's video parameters gave (capVideo),
	// -1 before any.
	videoLayer atomic.Int32

	closeOnce sync.Once
	done      chan struct{}
}

// packetCounters are a call's cau_sip_rtp_packets_total children, resolved once.
type packetCounters struct {
	fromRoomAudio, fromRoomVideo, toRoomAudio, toRoomVideo interface{ Inc() }
}

// dialog is what a call needs of its SIP dialog, whichever side placed the call.
type dialog interface {
	Context() context.Context
	LoadState() sip.DialogState
	Bye(ctx context.Context) error
	Do(ctx context.Context, req *sip.Request) (*sip.Response, error)
	ReadBye(req *sip.Request, tx sip.ServerTransaction) error
	WriteRequest(req *sip.Request) error
	Close() error
}

// newCall is a call the room placed: dlg holds its INVITE.
func newCall(g *Gateway, dlg *sipgo.DialogServerSession, meeting string, req *sip.Request, log *slog.Logger) *call {
	name := ""
	if f := req.From(); f != nil {
		name = strings.TrimSpace(f.DisplayName)
		if name == "" {
			name = f.Address.User
		}
	}
	if len(name) > 64 {
		name = name[:64]
	}
	if name == "" {
		name = "SIP room"
	}
	c := g.newCall(callIDOf(req), meeting, name, g.cfg.Site, "", log)
	c.dlg, c.inbound, c.source, c.transport = dlg, dlg, req.Source(), strings.ToUpper(req.Transport())
	c.peerAllow = headerValue(req, "Allow", "")
	if ct := req.Contact(); ct != nil {
		c.peer = ct.Address
	}
	if res := dlg.InviteResponse; res != nil && res.Contact() != nil {
		c.contact = *res.Contact()
	} else {
		c.contact = g.contact(strings.ToLower(req.Transport()))
	}
	return c
}

// newCall makes a call's common state; its dialog is the caller's to set.
func (g *Gateway) newCall(id, meeting, name, site, endpoint string, log *slog.Logger) *call {
	c := &call{g: g, id: id, meeting: meeting, name: name, site: site, endpoint: endpoint, log: log, sdpID: randomID(),
		events: make(chan protocol.Envelope, 64), done: make(chan struct{}), mix: newMixer(), rate: g711Rate,
		follow:    following{parts: map[string]protocol.Participant{}, siteOf: map[string]string{}},
		audioSSRC: uint32(randomID()), videoSSRC: uint32(randomID())}
	c.audioStats.clock, c.videoStats.clock = g711Rate, videoClock
	c.videoLayer.Store(-1)
	p := g.m.Packets
	c.packets = packetCounters{fromRoomAudio: p.WithLabelValues("from_room", "audio"),
		fromRoomVideo: p.WithLabelValues("from_room", "video"), toRoomAudio: p.WithLabelValues("to_room", "audio"),
		toRoomVideo: p.WithLabelValues("to_room", "video")}
	return c
}

// open binds the legs, joins the meeting and publishes the room's tracks to the bridge.
// On failure it returns the SIP status to refuse the INVITE with.
func (c *call) open(ctx context.Context, offer *description) (int, string, error) {
	if err := c.openLegs(); err != nil {
		return sip.StatusInternalServerError, "Server Internal Error", err
	}
	if offer != nil {
		if err := c.setRemote(offer, false); err != nil {
			return sip.StatusNotAcceptableHere, "Not Acceptable Here: unusable SRTP keys", err
		}
		c.setRate(offer)
	}
	return c.join(ctx)
}

// openLegs binds the call's RTP sockets.
func (c *call) openLegs() error {
	var err error
	if c.audio, err = openLeg(c.g.mediaIP); err != nil {
		return err
	}
	c.video, err = openLeg(c.g.mediaIP)
	return err
}

// join enters the meeting as the room and publishes its tracks; on failure it returns
// the SIP status that says why.
func (c *call) join(ctx context.Context) (int, string, error) {
	// Each call's token is its own (jti): signaling caps the sessions of one token, and
	// two calls from one site in the same second would otherwise sign the same bytes.
	tok, err := c.g.cfg.Keys.Sign(auth.Claims{Use: auth.UseJoin, Meeting: c.meeting, Site: c.site, Name: c.name,
		Role: auth.RoleRoom, Endpoint: c.endpoint, RegisteredClaims: jwt.RegisteredClaims{ID: fmt.Sprintf("sip-%x", c.sdpID)}},
		time.Minute)
	if err != nil {
		return sip.StatusInternalServerError, "Server Internal Error", fmt.Errorf("join token: %w", err)
	}
	if c.sub, err = peerconn.New(c.g.api, webrtc.Configuration{}); err != nil {
		return sip.StatusInternalServerError, "Server Internal Error", fmt.Errorf("subscriber connection: %w", err)
	}
	c.sub.OnTrack(c.onTrack)
	// Both connections exist before run starts: it reads them for every event.
	if c.pub, err = peerconn.New(c.g.api, webrtc.Configuration{}); err != nil {
		return sip.StatusInternalServerError, "Server Internal Error", fmt.Errorf("publisher connection: %w", err)
	}
	ep := c.g.cfg.Signaling.Attach(signaling.AttachOptions{Remote: "sip:" + c.source,
		OnEvent: func(env protocol.Envelope) {
			select {
			case c.events <- env:
			default:
				c.log.Warn("sip call: event queue full; hanging up")
				go c.hangup("event queue full")
			}
		},
		OnClose: func(code int, reason string) {
			c.log.Info("sip call: left the meeting", "code", code, "reason", reason)
			go c.hangup("left the meeting: " + reason)
		},
		Link: c.link})
	c.mu.Lock() // close may run already, from OnClose
	c.ep = ep
	c.mu.Unlock()
	env, err := c.ep.Request(ctx, protocol.KindJoin, protocol.Join{Token: tok,
		// The room decodes H.264 only: browsers publish it while the room is in the meeting.
		VideoCodecs: []string{protocol.VideoCodecH264}})
	if status, reason, failed := joinFailure(env, err); failed {
		return status, reason, fmt.Errorf("join: %s", reason)
	}
	var j protocol.Joined
	if err := protocol.DecodeData(env, &j); err != nil {
		return sip.StatusInternalServerError, "Server Internal Error", fmt.Errorf("join: %w", err)
	}
	c.joined(j)
	go c.run()
	if err := c.publish(ctx); err != nil {
		return sip.StatusInternalServerError, "Server Internal Error", err
	}
	c.log.Info("sip call joined the meeting", "participant", c.ep.Participant().ID, "name", c.name)
	return 0, "", nil
}

// joinFailure maps a join's reply onto a SIP refusal; failed is false for success.
func joinFailure(env protocol.Envelope, err error) (status int, reason string, failed bool) {
	switch {
	case errors.Is(err, context.Canceled):
		return sip.StatusRequestTerminated, "Request Terminated", true
	case err != nil:
		return sip.StatusServiceUnavailable, "Service Unavailable: the meeting did not answer", true
	case env.Kind != protocol.KindError:
		return 0, "", false
	}
	var e protocol.Error
	if protocol.DecodeData(env, &e) != nil {
		return sip.StatusInternalServerError, "Server Internal Error", true
	}
	switch e.Code {
	case protocol.CodeForbidden:
		// Signaling refuses a meeting that is not scheduled (or not open now) this way.
		if strings.Contains(e.Message, "not scheduled") {
			return sip.StatusNotFound, "Not Found: no such meeting", true
		}
		return sip.StatusForbidden, "Forbidden: " + e.Message, true
	case protocol.CodeCapacity:
		return sip.StatusBusyHere, "Busy Here: the meeting is full", true
	case protocol.CodeUnauthorized:
		return sip.StatusForbidden, "Forbidden", true
	}
	return sip.StatusServiceUnavailable, "Service Unavailable", true
}

// publish offers the room's camera and microphone on the publisher connection.
func (c *call) publish(ctx context.Context) error {
	var err error
	stream := "sip-" + c.ep.Participant().ID
	if c.toMeetingVideo, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264,
		ClockRate: videoClock, SDPFmtpLine: "level-asymmetry-allowed=1;" + h264Fmtp}, "camera", stream); err != nil {
		return err
	}
	if c.toMeetingAudio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus,
		ClockRate: 48000, Channels: 2}, "mic", stream); err != nil {
		return err
	}
	var tracks []protocol.TrackInfo
	for _, tr := range []*webrtc.TrackLocalStaticRTP{c.toMeetingAudio, c.toMeetingVideo} {
		tc, err := c.pub.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return fmt.Errorf("publish %s: %w", tr.Kind(), err)
		}
		src := protocol.SourceMicrophone
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			src = protocol.SourceCamera
			// A subscriber's keyframe request, relayed by the bridge, goes on to the room.
			go client.ReadKeyframeRequests(tc.Sender(), c.keyframeToRoom)
		} else {
			go client.ReadKeyframeRequests(tc.Sender(), func() {}) // drained for the interceptors
		}
		tracks = append(tracks, protocol.TrackInfo{ID: tr.ID(), Source: src})
	}
	offer, err := c.pub.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(c.pub)
	if err := c.pub.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return fmt.Errorf("publish: gathering: %w", ctx.Err())
	}
	env, err := c.ep.Request(ctx, protocol.KindOffer, protocol.Offer{SDP: c.pub.LocalDescription().SDP, Tracks: tracks})
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if env.Kind == protocol.KindError {
		var e protocol.Error
		_ = protocol.DecodeData(env, &e)
		return fmt.Errorf("publish: the bridge refused the offer: %s", e.Message)
	}
	var ans protocol.Answer
	if err := protocol.DecodeData(env, &ans); err != nil {
		return fmt.Errorf("publish: answer: %w", err)
	}
	if err := c.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.SDP}); err != nil {
		return fmt.Errorf("publish: answer: %w", err)
	}
	return nil
}

// run handles the endpoint's events in order: the bridge's subscriber offers are
// answered, and its candidates added.
func (c *call) run() {
	for {
		select {
		case env := <-c.events:
			c.event(env)
		case <-c.ep.Done():
			return
		case <-c.done:
			return
		}
	}
}

func (c *call) event(env protocol.Envelope) {
	if c.onMeetingEvent(env) {
		return
	}
	if _, err := attachrtc.HandleMedia(env, c.ep, c.sub, c.pub); err != nil {
		c.log.Warn("sip call: answering the bridge", "err", err)
	}
}

// start runs the media once the call is confirmed.
func (c *call) start() {
	d := c.remote()
	codec := func(m *media) string {
		if m == nil {
			return codecNone
		}
		return m.Codec
	}
	c.g.m.Codecs.WithLabelValues("audio", codec(d.Audio)).Inc()
	c.g.m.Codecs.WithLabelValues("video", codec(d.Video)).Inc()
	c.mu.Lock()
	select {
	case <-c.done: // hung up meanwhile (the meeting ended)
		c.mu.Unlock()
		return
	default:
	}
	c.answered = true
	c.g.m.Active.Inc()
	if held(d) {
		c.setState(stateHeld)
	} else {
		c.setState(stateActive)
	}
	c.mu.Unlock()
	c.capVideo(d)
	encryption := "none"
	if c.secure() {
		encryption = "srtp"
	}
	c.g.m.Encryption.WithLabelValues(encryption).Inc()
	if d.VideoRefused != "" {
		c.g.m.VideoRefused.WithLabelValues(d.VideoRefused).Inc()
		c.log.Warn("sip call is audio-only: its video was refused", "reason", d.VideoRefused,
			"why", videoRefusedText[d.VideoRefused])
	}
	c.log.Info("sip call answered", "audio", codec(d.Audio), "video", codec(d.Video), "opus", opusAvailable,
		"encryption", encryption, "sip_transport", c.transport)
	c.g.warnPlainSDES(c, c.transport)
	if d.Audio != nil {
		go c.readRoomAudio(d.Audio)
	}
	if d.Video != nil {
		go c.readRoomVideo(d.Video)
	}
	go c.mixLoop()
	go c.readRoomRTCP(c.audio)
	go c.readRoomRTCP(c.video)
	go c.reportLoop()
	// The room starts on a keyframe of what it is sent.
	c.keyframeFromRoom()
}

// hangup ends the call from our side: a BYE to the room, then close. Between a dialled-in
// call's 200 and its ACK the BYE is left to answer (byeAfterAck), which then sends it.
func (c *call) hangup(reason string) {
	select {
	case <-c.done:
		return
	default:
	}
	c.mu.Lock()
	pending := c.inbound != nil && !c.ackDone
	if pending {
		c.byePending = true
	}
	c.mu.Unlock()
	if !pending && c.dlg != nil && c.dlg.LoadState() == sip.DialogStateConfirmed {
		c.bye()
	}
	c.close(reason)
}

// bye sends the room a BYE.
func (c *call) bye() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.dlg.Bye(ctx); err != nil {
		c.log.Info("sip bye to the room", "err", err)
	}
}

// acked records that the 200's wait is over (its ACK came, or it timed out) and reports
// whether the call was hung up meanwhile.
func (c *call) acked() (hungUp bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ackDone = true
	return c.byePending
}

// byeAfterAck ends a call whose BYE had to wait for the ACK of its 200.
// close left the call listed and its dialog open for this, so that the ACK found it.
func (c *call) byeAfterAck() {
	c.bye()
	c.close("hung up before the ACK") // a no-op if it was closed already
	c.release()
}

// release drops what close left for the ACK: the call's listing and its dialog.
func (c *call) release() {
	c.g.forget(c)
	if c.dlg != nil {
		_ = c.dlg.Close()
	}
}

// close releases everything the call holds. Any goroutine, more than once.
func (c *call) close(reason string) {
	c.closeOnce.Do(func() {
		close(c.done)
		c.stopTimer()
		c.mu.Lock()
		ep, waitAck := c.ep, c.byePending && !c.ackDone
		c.mu.Unlock()
		if !waitAck { // else the ACK must still find the call (byeAfterAck)
			c.g.forget(c)
		}
		if ep != nil {
			ep.Close()
		}
		for _, pc := range []*webrtc.PeerConnection{c.pub, c.sub} {
			if pc != nil {
				_ = pc.Close()
			}
		}
		for _, l := range []*leg{c.audio, c.video} {
			if l != nil {
				l.close()
			}
		}
		if c.dlg != nil && !waitAck {
			_ = c.dlg.Close()
		}
		c.mu.Lock()
		if c.answered {
			c.answered = false
			c.g.m.Active.Dec()
		}
		c.setState(stateEnded)
		c.mu.Unlock()
		c.log.Info("sip call closed", "reason", reason)
	})
}
