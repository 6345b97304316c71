// Package client is a Go endpoint that speaks Cầu's public signaling protocol: it joins a
// meeting over the WebSocket, publishes media on a publisher connection and receives the
// others' on a subscriber connection, as a browser does. Tests and the load tester use it;
// it knows nothing of the server's internals.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/internal/peerconn"
	"github.com/cau-project/cau/internal/rtpvideo"
	"github.com/cau-project/cau/protocol"
)

// Options configure a Client.
type Options struct {
	Name string
	// Device is a room device's own id (protocol.Join.Device); empty for anyone else.
	Device string
	Logger *slog.Logger
	// Loopback restricts ICE to 127.0.0.1 (in-process tests).
	Loopback bool
	// RelayOnly uses relayed candidates only (through the TURN servers joined names):
	// what an endpoint behind a firewall that blocks every direct path ends up doing.
	RelayOnly bool
	// ResumeURLs, when set, keeps the endpoint in its meeting across signaling nodes
	// (issue 16): a socket that ends other than by the server's final word (1000 or a
	// 4xxx code) is replaced by one to the next of these URLs in turn, which joins again
	// with the same token and renegotiates the media (resume.go).
	ResumeURLs []string
	// OnStream, if set, is called once for every received track as it starts, before its
	// first packet is counted (the load tester keeps every Stream this way, including
	// those a later track with the same stream id replaces in Stream's lookup).
	OnStream func(*Stream)
	// UDPConn, if set, carries all of the endpoint's ICE traffic, through an ICE UDP mux
	// over it: an endpoint whose one socket is inside a network namespace (a shaped link in
	// tests). The caller closes it after the client.
	UDPConn net.PacketConn
	// Slots asks to receive the meeting's cameras and microphones in a fixed set of slots
	// (protocol.Join.Slots); Slots tells which participant each carries.
	Slots bool
	// OnPacket, if set, sees every RTP packet received, after it is counted, on the
	// track's reader goroutine; payload is valid during the call only.
	OnPacket func(s *Stream, hdr *rtp.Header, payload []byte)
}

// Client is one endpoint.
type Client struct {
	conn *websocket.Conn // replaced by resume; guarded by writeMu
	log  *slog.Logger
	api  *webrtc.API

	// join is the join message, kept to join again on another node (resume.go); set by
	// Dial, read-only after.
	join       protocol.Join
	resumeURLs []string
	// established is set once the first join succeeded, and resuming while resume
	// replaces the socket; both guarded by writeMu.
	established bool
	resuming    bool

	reconnectMu sync.Mutex // serialises reconnect
	answerMu    sync.Mutex // serialises answer (a late answer's offer may come twice)
	timeline    timeline   // the subscriber connection's steps towards media (timeline.go)

	// pub and sub are replaced when the server moves the media (reconnect); guarded by mu.
	pub *webrtc.PeerConnection
	sub *webrtc.PeerConnection

	// Self is this endpoint as the server announced it.
	Self    protocol.Participant
	Meeting string

	onStream func(*Stream)                      // from Options; set once by Dial
	onPacket func(*Stream, *rtp.Header, []byte) // from Options; set once by Dial
	mux      ice.UDPMux                         // over Options.UDPConn, nil without; set once by Dial

	writeMu sync.Mutex       // gorilla allows one concurrent writer
	replies protocol.Replies // the requests waiting for signaling's answer

	mu           sync.Mutex // guards everything below
	participants map[string]protocol.Participant
	streams      map[string]*Stream // by stream id + "/" + kind
	errs         []protocol.Error
	synth        *Synth
	publication  *publication // the media PublishWith started, until Unpublish
	reconnects   int
	resumes      int
	adoptions    int    // resumes whose media connections the server kept (Joined.Resumed)
	resumeToken  string // the latest Joined.Resume or Reconnect.Resume
	renewOnJoin  bool   // a resume's join is under way: renew the connections unless resumed
	nextURL      int    // the next of resumeURLs to try
	floor        *protocol.FloorState
	recording    protocol.Recording                                   // the meeting's recording state, as last told
	speaker      protocol.Speaker                                     // the dominant speaker and Last-N, as last told
	speakerN     int                                                  // speaker messages received
	pubLayers    map[protocol.Source][]string                         // publish_layers, as last told per source (view.go)
	pubLayersN   int                                                  // publish_layers messages received
	slots        map[string]protocol.SlotSource                       // the slot map, as last told (slots.go)
	slotsN       int                                                  // slot maps received
	offers       int                                                  // subscriber offers received
	pendingICE   map[*webrtc.PeerConnection][]webrtc.ICECandidateInit // until the remote description
	iceServers   []webrtc.ICEServer                                   // from the last joined
	relayOnly    bool                                                 // Options.RelayOnly
	stop         chan struct{}
	closed       chan struct{}
	closeErr     error
	closeOnce    sync.Once
}

// Stream counts what arrived on one received track.
type Stream struct {
	StreamID, TrackID, Kind, MimeType string
	Packets, Bytes                    atomic.Int64
	// FirstKeyframe is 1 if the first video packet started a keyframe (H.264: with its
	// SPS), 2 if not.
	FirstKeyframe atomic.Int32
	// NALTypes is, for H.264, the set of NAL unit types received so far (rtpvideo.H264NALTypes).
	NALTypes atomic.Uint32
	FirstAt  time.Time
	// ClockRate is the RTP clock rate of the track's codec.
	ClockRate uint32
	// layers counts the video packets of a simulcast Synth by the layer they carry
	// (VideoLayerOffset): low, middle, top. Written by the track's reader.
	layers [3]atomic.Int64

	rx rxStats // loss, jitter, latency and frames; see Stats
}

// ErrRejected is returned by Dial when the server refuses the join.
var ErrRejected = errors.New("join rejected")

// Dial opens the signaling socket at wsURL (ws://host/ws), joins with token and returns
// once the server has answered joined.
func Dial(ctx context.Context, wsURL, token string, opts Options) (*Client, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	api, mux, err := newAPI(opts.Loopback, opts.UDPConn)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	conn, resp, err := websocket.DefaultDialer.DialContext(ctx, wsURL, http.Header{})
	if err != nil {
		if mux != nil {
			_ = mux.Close()
		}
		return nil, fmt.Errorf("dial %s: %w", wsURL, err)
	}
	_ = resp.Body.Close()
	c := &Client{conn: conn, log: log, api: api, participants: map[string]protocol.Participant{},
		streams: map[string]*Stream{},
		stop:    make(chan struct{}), closed: make(chan struct{}), onStream: opts.OnStream, relayOnly: opts.RelayOnly,
		onPacket: opts.OnPacket,
		join:     protocol.Join{Token: token, Name: opts.Name, Device: opts.Device, Slots: opts.Slots}, resumeURLs: opts.ResumeURLs,
		mux: mux}
	if err := c.newPeers(); err != nil {
		_ = conn.Close()
		if mux != nil {
			_ = mux.Close()
		}
		return nil, err
	}
	go c.readLoop(conn)
	if _, err := c.joinMeeting(ctx, c.join); err != nil {
		c.Close()
		return nil, err
	}
	c.writeMu.Lock()
	c.established = true
	c.writeMu.Unlock()
	return c, nil
}

// joinMeeting sends the join and returns what joined says; the read goroutine has
// already taken it in (applyJoined).
func (c *Client) joinMeeting(ctx context.Context, join protocol.Join) (protocol.Joined, error) {
	env, err := c.Request(ctx, protocol.KindJoin, join)
	if err != nil {
		return protocol.Joined{}, err
	}
	var j protocol.Joined
	if err := protocol.DecodeData(env, &j); err != nil {
		return j, fmt.Errorf("joined: %w", err)
	}
	return j, nil
}

// applyJoined takes in what joined says: who the client is, who else is in the meeting
// and the floor. It runs on the read goroutine, before the message after joined is read:
// the server may send a participant change or a floor change right after joined (one
// from another signaling node, say), and that change must land on joined's list, not
// under it. Applied by the goroutine waiting in joinMeeting instead, the list used to
// overwrite such a change (TestPresenceChangeWhileFollowing, under load).
func (c *Client) applyJoined(j protocol.Joined) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Self, c.Meeting = j.Self, j.Meeting
	c.resumeToken = j.Resume
	c.floor = j.Floor
	c.participants = make(map[string]protocol.Participant, len(j.Participants))
	for _, p := range j.Participants {
		c.participants[p.ID] = p
	}
}

// useICEServers gives both connections (and later ones) the bridge's TURN servers from
// joined; ICE falls back to relayed candidates by itself when no direct path works.
func (c *Client) useICEServers(servers []protocol.ICEServer) {
	if len(servers) == 0 {
		return
	}
	conf := make([]webrtc.ICEServer, 0, len(servers))
	for _, s := range servers {
		conf = append(conf, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	c.mu.Lock()
	c.iceServers = conf
	pub, sub := c.pub, c.sub
	c.mu.Unlock()
	for _, pc := range []*webrtc.PeerConnection{pub, sub} {
		if pc == nil {
			continue
		}
		cfg := pc.GetConfiguration()
		cfg.ICEServers = conf
		if err := pc.SetConfiguration(cfg); err != nil {
			c.log.Warn("TURN servers not applied", "err", err)
		}
	}
}

// newPeers creates the two connections (at start and after a reconnect).
func (c *Client) newPeers() error {
	c.mu.Lock()
	conf := webrtc.Configuration{ICEServers: c.iceServers}
	if c.relayOnly {
		conf.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	c.mu.Unlock()
	pub, err := peerconn.New(c.api, conf)
	if err != nil {
		return err
	}
	sub, err := peerconn.New(c.api, conf)
	if err != nil {
		_ = pub.Close()
		return err
	}
	c.mu.Lock()
	select {
	case <-c.closed:
		// A reconnect raced Close: shutdown already closed the connections it saw, so these
		// new ones would outlive the client.
		c.mu.Unlock()
		_ = pub.Close()
		_ = sub.Close()
		return errors.New("client closed")
	default:
	}
	c.pub, c.sub = pub, sub
	c.mu.Unlock()
	c.wirePeers(pub, sub)
	return nil
}

func (c *Client) peers() (pub, sub *webrtc.PeerConnection) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pub, c.sub
}

func (c *Client) wirePeers(pub, sub *webrtc.PeerConnection) {
	for target, pc := range map[protocol.Target]*webrtc.PeerConnection{protocol.TargetPublisher: pub, protocol.TargetSubscriber: sub} {
		target := target
		pc.OnICECandidate(func(ic *webrtc.ICECandidate) {
			if ic == nil {
				return
			}
			j := ic.ToJSON()
			_ = c.send(protocol.KindCandidate, "", protocol.Candidate{Target: target, Candidate: protocol.ICECandidate{
				Candidate: j.Candidate, SDPMid: j.SDPMid, SDPMLineIndex: j.SDPMLineIndex}})
		})
	}
	c.timeline.watchSubscriber(sub)
	sub.OnTrack(func(tr *webrtc.TrackRemote, rcv *webrtc.RTPReceiver) {
		// Read the receiver's RTCP so the interceptors see sender reports, as a browser
		// does: the receiver reports then carry LSR and the bridge can measure RTT.
		go func() {
			for {
				if _, _, err := rcv.ReadRTCP(); err != nil {
					return
				}
			}
		}()
		s := newStream(tr.StreamID(), tr.ID(), tr.Kind().String(), tr.Codec().MimeType, tr.Codec().ClockRate)
		c.mu.Lock()
		c.streams[s.StreamID+"/"+s.Kind] = s
		c.mu.Unlock()
		if c.onStream != nil {
			c.onStream(s)
		}
		buf := make([]byte, 1500)
		var pkt = &rtpPacket{}
		for {
			n, _, err := tr.Read(buf)
			if err != nil {
				return
			}
			if pkt.parse(buf[:n]) != nil {
				continue
			}
			h264 := strings.EqualFold(s.MimeType, webrtc.MimeTypeH264)
			if h264 {
				s.NALTypes.Or(rtpvideo.H264NALTypes(pkt.payload))
			}
			if s.Packets.Add(1) == 1 && tr.Kind() == webrtc.RTPCodecTypeVideo {
				if h264 && rtpvideo.H264NALTypes(pkt.payload)&(1<<rtpvideo.NALSPS) != 0 || !h264 && rtpvideo.VP8KeyframeStart(pkt.payload) {
					s.FirstKeyframe.Store(1)
				} else {
					s.FirstKeyframe.Store(2)
				}
			}
			s.Bytes.Add(int64(len(pkt.payload)))
			s.observe(&pkt.hdr, pkt.payload)
			s.countLayer(pkt.payload)
			if c.join.Slots {
				c.observeSlot(s, &pkt.hdr, pkt.payload)
			}
			if c.onPacket != nil {
				c.onPacket(s, &pkt.hdr, pkt.payload)
			}
		}
	})
}

// Publish starts synthetic camera and microphone tracks and negotiates them.
func (c *Client) Publish(ctx context.Context) error {
	synth, err := NewSynth(c.Self.ID + "-cam")
	if err != nil {
		return err
	}
	if err := c.negotiatePublisher(ctx, synth); err != nil {
		return err
	}
	c.mu.Lock()
	c.synth = synth
	c.mu.Unlock()
	go synth.Run(c.stop)
	return nil
}

// negotiatePublisher adds synth's tracks to the publisher connection and offers them.
func (c *Client) negotiatePublisher(ctx context.Context, synth *Synth) error {
	pub, _ := c.peers()
	var tracks []protocol.TrackInfo
	var video *webrtc.RTPTransceiver
	for _, tr := range []*webrtc.TrackLocalStaticRTP{synth.Audio, synth.Video} {
		tc, err := pub.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		src := protocol.SourceMicrophone
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			src, video = protocol.SourceCamera, tc
		}
		if tr.Kind() != webrtc.RTPCodecTypeVideo || len(synth.layers) == 0 {
			go ReadKeyframeRequests(tc.Sender(), synth.RequestKeyframe)
		}
		tracks = append(tracks, protocol.TrackInfo{ID: tr.ID(), Source: src})
	}
	if len(synth.layers) > 0 {
		for _, l := range synth.layers[1:] { // the first layer is the transceiver's own track
			if err := video.Sender().AddEncoding(l.track); err != nil {
				return fmt.Errorf("publish layer %s: %w", l.rid, err)
			}
		}
	}
	if err := c.offerPublisher(ctx, pub, tracks); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if len(synth.layers) > 0 {
		synth.negotiatedLayers(video)
	}
	for _, s := range pub.GetSenders() {
		if s.Track() != webrtc.TrackLocal(synth.Audio) {
			continue
		}
		for _, x := range s.GetParameters().HeaderExtensions {
			if x.URI == sdp.AudioLevelURI {
				synth.levelID.Store(uint32(x.ID))
			}
		}
	}
	c.flushCandidates(pub)
	return nil
}

// offerPublisher offers the publisher connection's current tracks (described by tracks)
// to the server and applies its answer.
func (c *Client) offerPublisher(ctx context.Context, pub *webrtc.PeerConnection, tracks []protocol.TrackInfo) error {
	offer, err := pub.CreateOffer(nil)
	if err != nil {
		return err
	}
	if err := pub.SetLocalDescription(offer); err != nil {
		return err
	}
	env, err := c.Request(ctx, protocol.KindOffer, protocol.Offer{SDP: offer.SDP, Tracks: tracks})
	if err != nil {
		return err
	}
	var ans protocol.Answer
	if err := protocol.DecodeData(env, &ans); err != nil {
		return err
	}
	return pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.SDP})
}

// reconnect replaces both connections after the server moved this endpoint's media to
// another bridge, and publishes again what was published.
func (c *Client) reconnect(reason string) {
	// On the read goroutine (dispatch), so that the subscriber offer the new bridge sends
	// next finds the new connection: answered on a goroutine of its own, it raced the
	// renewal, went to the old connection, and the bridge waited for its answer for ever
	// (issue 10's national meeting). One at a time, under reconnectMu: two reconnect
	// messages close together (a bridge lost, then its replacement re-placed) would
	// otherwise each close the connections they saw.
	c.reconnectMu.Lock()
	defer c.reconnectMu.Unlock()
	c.log.Info("media moved; reconnecting", "reason", reason)
	if err := c.renewPeers(); err != nil {
		c.log.Error("reconnect", "err", err)
		return
	}
	c.mu.Lock()
	c.reconnects++
	c.mu.Unlock()
	go c.republish()
}

// renewPeers replaces both connections with new ones.
func (c *Client) renewPeers() error {
	oldPub, oldSub := c.peers()
	_ = oldPub.Close()
	_ = oldSub.Close()
	c.mu.Lock()
	c.streams = map[string]*Stream{} // what arrives from now on is counted afresh
	c.pendingICE = nil               // held for the closed connections
	c.mu.Unlock()
	return c.newPeers()
}

// republish offers again, on the new publisher connection, what was published.
func (c *Client) republish() {
	c.mu.Lock()
	synth := c.synth
	c.mu.Unlock()
	if synth == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.negotiatePublisher(ctx, synth); err != nil {
		c.log.Error("republish after reconnect", "err", err)
	}
}

// Reconnects counts the times the server moved this endpoint's media.
func (c *Client) Reconnects() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reconnects
}

// Request sends a message and waits for the reply with the same id (or an error).
func (c *Client) Request(ctx context.Context, kind protocol.Kind, data any) (protocol.Envelope, error) {
	id, ch, done := c.replies.Expect()
	defer done()
	if err := c.send(kind, id, data); err != nil {
		return protocol.Envelope{}, err
	}
	reply := func(env protocol.Envelope) (protocol.Envelope, error) {
		if env.Kind == protocol.KindError {
			var e protocol.Error
			_ = protocol.DecodeData(env, &e)
			return env, fmt.Errorf("%s: %w: %s: %s", kind, ErrRejected, e.Code, e.Message)
		}
		return env, nil
	}
	select {
	case env := <-ch:
		return reply(env)
	case <-c.closed:
		// A server that refuses sends its error and then closes: the reply may have been
		// delivered just before the close, and it says why.
		select {
		case env := <-ch:
			return reply(env)
		default:
		}
		return protocol.Envelope{}, fmt.Errorf("%s: connection closed: %w", kind, c.closeErr)
	case <-ctx.Done():
		return protocol.Envelope{}, fmt.Errorf("%s: %w", kind, ctx.Err())
	}
}

func (c *Client) send(kind protocol.Kind, id string, data any) error {
	b, err := protocol.Encode(kind, id, data)
	if err != nil {
		return err
	}
	return c.SendRaw(b)
}

// SendRaw writes bytes as one text message, unchecked (for tests of bad input).
func (c *Client) SendRaw(b []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.conn.WriteMessage(websocket.TextMessage, b)
}

// Participants returns the other participants as last announced.
func (c *Client) Participants() map[string]protocol.Participant {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]protocol.Participant, len(c.participants))
	for k, v := range c.participants {
		out[k] = v
	}
	return out
}

// Stream returns what arrived on a received stream's track of kind ("audio"/"video").
func (c *Client) Stream(streamID, kind string) *Stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.streams[streamID+"/"+kind]
}

// Errors returns error messages the server sent outside a request.
func (c *Client) Errors() []protocol.Error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]protocol.Error(nil), c.errs...)
}

// Done is closed when the socket ends; Err then says why.
func (c *Client) Done() <-chan struct{} { return c.closed }

// Err is the reason the socket ended (a *websocket.CloseError for a server close).
func (c *Client) Err() error {
	select {
	case <-c.closed:
		return c.closeErr
	default:
		return nil
	}
}

func (c *Client) shutdown(err error) {
	c.closeOnce.Do(func() {
		c.closeErr = err
		c.mu.Lock() // newPeers checks closed under mu, so no connection is created after this
		close(c.closed)
		c.mu.Unlock()
		close(c.stop)
		pub, sub := c.peers()
		_ = pub.Close()
		_ = sub.Close()
		if c.mux != nil {
			_ = c.mux.Close()
		}
		c.writeMu.Lock()
		_ = c.conn.Close()
		c.writeMu.Unlock()
	})
}

// Leave says goodbye and closes.
func (c *Client) Leave() {
	_ = c.send(protocol.KindLeave, "", nil)
	c.Close()
}

// Close closes the socket and the connections without a goodbye.
func (c *Client) Close() { c.shutdown(errors.New("closed by client")) }

// addCandidate adds a remote candidate, or holds it until the connection has its remote
// description (the server's candidates may overtake the answer or offer they belong to).
func (c *Client) addCandidate(pc *webrtc.PeerConnection, ic webrtc.ICECandidateInit) {
	c.mu.Lock()
	if pc.RemoteDescription() == nil {
		if c.pendingICE == nil {
			c.pendingICE = map[*webrtc.PeerConnection][]webrtc.ICECandidateInit{}
		}
		c.pendingICE[pc] = append(c.pendingICE[pc], ic)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	if err := pc.AddICECandidate(ic); err != nil {
		c.log.Debug("remote candidate", "err", err)
	}
}

// flushCandidates adds the candidates held for pc once its remote description is set.
func (c *Client) flushCandidates(pc *webrtc.PeerConnection) {
	c.mu.Lock()
	held := c.pendingICE[pc]
	delete(c.pendingICE, pc)
	c.mu.Unlock()
	for _, ic := range held {
		if err := pc.AddICECandidate(ic); err != nil {
			c.log.Debug("held candidate", "err", err)
		}
	}
}
