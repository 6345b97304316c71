package sfu

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/peerconn"
	"github.com/cau-project/cau/internal/testpeer"
	"github.com/cau-project/cau/internal/testutil"
)

// This file is the in-process test harness: real pion endpoints over loopback talking to
// a real bridge, with the signaling done by direct calls instead of a WebSocket.

func testLogger() *slog.Logger { return testutil.Logger() }

func newTestBridge(t testing.TB) *Bridge {
	t.Helper()
	b, err := New(Config{ICEUDPPort: 0, ICETCPPort: -1, IncludeLoopback: true, Logger: testLogger()})
	if err != nil {
		t.Fatalf("new bridge: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// tcpOnly makes new test endpoints use ICE-TCP only.
var tcpOnly atomic.Bool

// h264Only makes new test endpoints offer and accept Opus and H.264 only, as Safari and
// many hardware codecs do.
var h264Only atomic.Bool

// endpointAPI is a browser-like pion stack: default codecs and interceptors.
func endpointAPI(t testing.TB) *webrtc.API {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if h264Only.Load() {
		registerH264Only(t, me)
	} else if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	// Browsers send their microphone's level (RFC 6464) with every audio packet.
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI},
		webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	return testpeer.API(t, me, nil, func(se *webrtc.SettingEngine) {
		testpeer.Loopback(se)
		// As browsers (and cau loadtest) answer the bridge's subscriber offer: setup:active,
		// the DTLS client; pion alone would take the server's part towards an ICE lite
		// offerer, and the bridge, as DTLS client, would leave that connection's SRTP to
		// pion (ownsrtp.go), a path no browser takes.
		if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleClient); err != nil {
			t.Fatal(err)
		}
		if tcpOnly.Load() {
			// A network that blocks UDP: only ICE-TCP (active, towards the bridge's port).
			se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
		}
	})
}

// registerH264Only registers what a Safari-like endpoint supports: Opus, and H.264 in the
// constrained-baseline and high profiles (packetization modes 1 and 0), with RTX.
func registerH264Only(t testing.TB, me *webrtc.MediaEngine) {
	t.Helper()
	fb := []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	codecs := []struct {
		kind webrtc.RTPCodecType
		c    webrtc.RTPCodecParameters
	}{
		{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecParameters{PayloadType: 111, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}}},
		{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecParameters{PayloadType: 96, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: 90000, RTCPFeedback: fb,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f"}}},
		{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecParameters{PayloadType: 97, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=96"}}},
		{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecParameters{PayloadType: 98, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: 90000, RTCPFeedback: fb,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}}},
		{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecParameters{PayloadType: 99, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=98"}}},
		{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecParameters{PayloadType: 100, RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: 90000, RTCPFeedback: fb,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f"}}},
	}
	for _, c := range codecs {
		if err := me.RegisterCodec(c.c, c.kind); err != nil {
			t.Fatal(err)
		}
	}
}

// received records what an endpoint got on one incoming track.
type received struct {
	streamID, trackID string
	mime              string
	packets           atomic.Int64
	firstIsKeyframe   atomic.Int32 // 0 unknown, 1 yes, 2 no
	ssrc              atomic.Uint32
	lastSeq           atomic.Uint32
	payloadTypes      sync.Map     // uint8 → struct{}
	levels            atomic.Int64 // packets that carried an audio level (RFC 6464)
	firstAt           atomic.Int64 // when the first packet was read (unix ns)
	// resumes counts video packets that follow the previous one in sequence but not in
	// time (their timestamps jump by resumeGap or more: the bridge paused the track and
	// closed the numbering over the pause), and resumesOnKeyframe those of them that
	// start a keyframe. A machine too loaded to read in time delays packets but does not
	// make their timestamps jump, so this holds under any load.
	resumes, resumesOnKeyframe atomic.Int64
}

// resumeGap is a jump in a video track's RTP time (90 kHz) long enough to be a pause.
const resumeGap = 45000 // 0.5 s

// testEndpoint is a pion peer acting as a browser: it publishes synthetic VP8 video and
// Opus audio and counts what it receives.
type testEndpoint struct {
	t        testing.TB
	name     string
	peer     *Peer // its presence on the bridge
	pub, sub *webrtc.PeerConnection
	audio    *webrtc.TrackLocalStaticRTP
	video    *webrtc.TrackLocalStaticRTP

	mu   sync.Mutex
	recv map[string]*received // by stream id + "/" + kind
	stop chan struct{}

	keyframeWanted atomic.Bool
	plisReceived   atomic.Int64
	videoMime      string
	// loudness is what the microphone hears, sent as the RFC 6464 level 127 − loudness
	// (0: silence); levelID is the negotiated extension id, 0 if none.
	loudness atomic.Uint32
	levelID  uint8
	// loudAt is when the first audio packet with a loudness above 0 was sent (unix ns).
	loudAt atomic.Int64
	// tag, when not 0, is written into every packet's payload (audio byte 0, video byte
	// 10), so a receiver of a slot tells whose packet it got. Set before publishing.
	tag byte
}

// tagAt is where a video payload carries its endpoint's tag (after the VP8 descriptor
// and the start of the frame header the keyframe check reads).
const tagAt = 10

func newTestEndpoint(t testing.TB, b *Bridge, name string, onTrack func(*UpTrack)) *testEndpoint {
	t.Helper()
	return newTestEndpointWith(t, b, name, onTrack, endpointOpts{})
}

// endpointOpts varies a test endpoint: its pion stack (nil: endpointAPI), and a reader
// of its incoming video tracks in place of the default record.
type endpointOpts struct {
	api     *webrtc.API
	onVideo func(*webrtc.TrackRemote)
	onOffer func() // called for each subscriber offer the bridge sends
	// onRemote, if set, reads every incoming track (of either kind) in place of the
	// default record.
	onRemote func(*webrtc.TrackRemote)
}

func newTestEndpointWith(t testing.TB, b *Bridge, name string, onTrack func(*UpTrack), o endpointOpts) *testEndpoint {
	t.Helper()
	api := o.api
	if api == nil {
		api = endpointAPI(t)
	}
	e := &testEndpoint{t: t, name: name, recv: map[string]*received{}, stop: make(chan struct{})}
	var err error
	if e.pub, err = peerconn.New(api, webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	if e.sub, err = peerconn.New(api, webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	e.peer, err = b.NewPeer(PeerParams{
		ID: name,
		OnCandidate: func(target Target, c webrtc.ICECandidateInit) {
			pc := e.pub
			if target == Subscriber {
				pc = e.sub
			}
			_ = pc.AddICECandidate(c)
		},
		OnSubscriberOffer: func(sdp string) {
			if o.onOffer != nil {
				o.onOffer()
			}
			go e.answer(sdp)
		},
		OnTrack: onTrack,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.pub.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			_ = e.peer.AddCandidate(Publisher, c.ToJSON())
		}
	})
	e.sub.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			_ = e.peer.AddCandidate(Subscriber, c.ToJSON())
		}
	})
	e.sub.OnTrack(func(tr *webrtc.TrackRemote, rcv *webrtc.RTPReceiver) {
		go drainRTCP(rcv)
		if o.onRemote != nil {
			o.onRemote(tr)
			return
		}
		if o.onVideo != nil && tr.Kind() == webrtc.RTPCodecTypeVideo {
			o.onVideo(tr)
			return
		}
		r := &received{streamID: tr.StreamID(), trackID: tr.ID(), mime: tr.Codec().MimeType}
		r.ssrc.Store(uint32(tr.SSRC()))
		var levelID uint8
		var haveLast bool
		var lastSeq uint16
		var lastTS uint32
		for _, x := range rcv.GetParameters().HeaderExtensions {
			if x.URI == sdp.AudioLevelURI {
				levelID = uint8(x.ID)
			}
		}
		e.mu.Lock()
		e.recv[tr.StreamID()+"/"+tr.Kind().String()] = r
		e.mu.Unlock()
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if r.firstAt.Load() == 0 {
				r.firstAt.Store(time.Now().UnixNano())
			}
			if r.packets.Add(1) == 1 && tr.Kind() == webrtc.RTPCodecTypeVideo {
				if isKeyframeStart(codecKindOf(tr.Codec().MimeType), pkt.Payload) {
					r.firstIsKeyframe.Store(1)
				} else {
					r.firstIsKeyframe.Store(2)
				}
			}
			r.payloadTypes.Store(pkt.PayloadType, struct{}{})
			r.lastSeq.Store(uint32(pkt.SequenceNumber))
			if levelID != 0 && len(pkt.GetExtension(levelID)) > 0 {
				r.levels.Add(1)
			}
			if tr.Kind() == webrtc.RTPCodecTypeVideo {
				if haveLast && pkt.SequenceNumber == lastSeq+1 && int32(pkt.Timestamp-lastTS) >= resumeGap {
					r.resumes.Add(1)
					if isKeyframeStart(codecKindOf(tr.Codec().MimeType), pkt.Payload) {
						r.resumesOnKeyframe.Add(1)
					}
				}
				haveLast, lastSeq, lastTS = true, pkt.SequenceNumber, pkt.Timestamp
			}
		}
	})
	t.Cleanup(e.close)
	return e
}

func (e *testEndpoint) closing() bool {
	select {
	case <-e.stop:
		return true
	default:
		return false
	}
}

func (e *testEndpoint) answer(sdp string) {
	if e.closing() {
		return
	}
	if err := e.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		if !e.closing() {
			e.t.Errorf("%s: subscriber offer: %v", e.name, err)
		}
		return
	}
	ans, err := e.sub.CreateAnswer(nil)
	if err == nil {
		err = e.sub.SetLocalDescription(ans)
	}
	if err != nil {
		if !e.closing() {
			e.t.Errorf("%s: subscriber answer: %v", e.name, err)
		}
		return
	}
	if err := e.peer.HandleAnswer(ans.SDP); err != nil {
		if !e.closing() {
			e.t.Errorf("%s: handle answer: %v", e.name, err)
		}
	}
}

// publish adds audio and video tracks, negotiates, and starts sending synthetic media.
func (e *testEndpoint) publish() { e.publishVideo(webrtc.MimeTypeVP8) }

// publishVideo publishes audio and video in the given codec (VP8 or H.264).
func (e *testEndpoint) publishVideo(mime string) {
	e.videoMime = mime
	t := e.t
	var err error
	stream := "stream-" + e.name
	e.audio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio-"+e.name, stream)
	if err != nil {
		t.Fatal(err)
	}
	vc := webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000}
	if mime == webrtc.MimeTypeH264 {
		vc.SDPFmtpLine = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
	}
	e.video, err = webrtc.NewTrackLocalStaticRTP(vc, "video-"+e.name, stream)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []webrtc.TrackLocal{e.audio, e.video} {
		tc, err := e.pub.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		go e.readFeedback(tc.Sender())
	}
	e.negotiatePublisher(t)
	e.learnLevelID()
	go e.sendMedia()
}

// publishAudio publishes audio alone (a microphone), negotiates, and starts sending 50
// packets a second with the level of e.loudness.
func (e *testEndpoint) publishAudio() {
	t := e.t
	var err error
	e.audio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
		"audio-"+e.name, "stream-"+e.name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.pub.AddTransceiverFromTrack(e.audio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	e.negotiatePublisher(t)
	e.learnLevelID()
	go e.paceAudio(func(int) {})
}

// learnLevelID reads the audio-level extension id the publishing connection negotiated.
func (e *testEndpoint) learnLevelID() {
	for _, tc := range e.pub.GetTransceivers() {
		if tc.Kind() != webrtc.RTPCodecTypeAudio || tc.Sender() == nil {
			continue
		}
		for _, x := range tc.Sender().GetParameters().HeaderExtensions {
			if x.URI == sdp.AudioLevelURI {
				e.levelID = uint8(x.ID)
			}
		}
	}
}

// negotiatePublisher offers e's publishing connection to its bridge peer and applies
// the answer.
func (e *testEndpoint) negotiatePublisher(t testing.TB) {
	t.Helper()
	offer, err := e.pub.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.pub.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	answer, err := e.peer.HandleOffer(offer.SDP)
	if err != nil {
		t.Fatalf("%s: handle offer: %v", e.name, err)
	}
	if err := e.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
}

// readFeedback turns a PLI or FIR from the bridge into a keyframe on the next frame, as
// a browser's encoder would.
func (e *testEndpoint) readFeedback(s *webrtc.RTPSender) {
	client.ReadKeyframeRequests(s, func() {
		e.keyframeWanted.Store(true)
		e.plisReceived.Add(1)
	})
}

// sendMedia sends 50 audio packets/s and ~16 video frames/s of 3 packets. Only the first
// frame is a keyframe unless the bridge asks for another, so a test sees whether keyframe
// requests work.
func (e *testEndpoint) sendMedia() {
	var seqV uint16
	var tsV uint32
	frame := 0
	payload := make([]byte, 900)
	e.paceAudio(func(n int) {
		if n%3 == 2 { // ~16 fps is enough for the tests and easy on 2 cores
			return
		}
		frame++
		tsV += 3000
		key := frame == 1 || e.keyframeWanted.Swap(false)
		for i := 0; i < 3; i++ {
			p := payload[:900]
			if e.videoMime == webrtc.MimeTypeH264 {
				// One FU-A-fragmented NAL unit per frame: IDR (5) or a non-IDR slice (1).
				nal := byte(1)
				if key {
					nal = 5
				}
				p[0] = 0x60 | 28 // FU indicator: NRI 3, type FU-A
				p[1] = nal
				if i == 0 {
					p[1] |= 0x80 // start
				}
				if i == 2 {
					p[1] |= 0x40 // end
				}
			} else {
				p[0] = 0x00 // continuation
				if i == 0 {
					p[0] = 0x10 // S=1, partition 0
				}
				p[1] = 0x01 // delta frame
				if key {
					p[1] = 0x00 // keyframe
				}
			}
			if e.tag != 0 {
				p[tagAt] = e.tag
			}
			seqV++
			_ = e.video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seqV, Timestamp: tsV, Marker: i == 2}, Payload: p})
		}
	})
}

// paceAudio sends an audio packet (20 ms of Opus: 960 ticks at 48 kHz) every 20 ms until
// e stops, and after each calls then with the tick's number, counted from 0: the video
// senders hang their frames on it.
func (e *testEndpoint) paceAudio(then func(n int)) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	payload := make([]byte, 80)
	var seq uint16
	var ts uint32
	for n := 0; ; n++ {
		select {
		case <-e.stop:
			return
		case <-tick.C:
		}
		seq++
		ts += 960
		e.writeAudio(seq, ts, payload)
		then(n)
	}
}

// writeAudio sends one audio packet with the microphone's level (RFC 6464), and keeps
// when the first loud one left (loudAt).
func (e *testEndpoint) writeAudio(seq uint16, ts uint32, payload []byte) {
	ah := rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts}
	loud := e.loudness.Load()
	if e.levelID != 0 {
		_ = ah.SetExtension(e.levelID, []byte{byte(127 - min(loud, 127))})
	}
	if e.tag != 0 {
		payload[0] = e.tag
	}
	if loud > 0 && e.loudAt.Load() == 0 {
		e.loudAt.Store(time.Now().UnixNano())
	}
	_ = e.audio.WriteRTP(&rtp.Packet{Header: ah, Payload: payload})
}

// got returns the record for a stream's kind, or nil.
func (e *testEndpoint) got(streamID string, kind webrtc.RTPCodecType) *received {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.recv[streamID+"/"+kind.String()]
}

// waitPackets waits up to timeout for e to have received n packets of kind from
// stream, failing with why if it does not.
func (e *testEndpoint) waitPackets(t testing.TB, timeout time.Duration, stream string, kind webrtc.RTPCodecType, n int64, why string) {
	t.Helper()
	eventually(t, timeout, func() string {
		if g := e.got(stream, kind); g == nil || g.packets.Load() < n {
			return why
		}
		return ""
	})
}

func (e *testEndpoint) close() {
	select {
	case <-e.stop:
		return
	default:
		close(e.stop)
	}
	_ = e.pub.Close()
	_ = e.sub.Close()
	_ = e.peer.Close()
}

// drop lets go of a closed endpoint's pion stacks and bridge peer, so that a test can
// tell whether anything else keeps them (idle_test.go). Only once its goroutines ended.
func (e *testEndpoint) drop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.peer, e.pub, e.sub, e.audio, e.video, e.recv = nil, nil, nil, nil, nil, nil
}

// eventually is testutil.Eventually: poll until cond returns "" (the reason otherwise).
func eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	testutil.Eventually(t, timeout, cond)
}

// room wires endpoints like a meeting would: every published track goes to every other
// endpoint, now and when they join later.
type room struct {
	mu        sync.Mutex
	endpoints []*testEndpoint
	tracks    []*UpTrack
}

func (r *room) onTrack(owner *string) func(*UpTrack) {
	return func(up *UpTrack) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.tracks = append(r.tracks, up)
		for _, e := range r.endpoints {
			if e.name != *owner {
				if _, err := e.peer.Subscribe(up, up.ID(), up.StreamID()); err != nil {
					panic(fmt.Sprintf("subscribe: %v", err))
				}
			}
		}
	}
}

// drop forgets the room's endpoints and tracks (see testEndpoint.drop).
func (r *room) drop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endpoints, r.tracks = nil, nil
}

func (r *room) join(t testing.TB, b *Bridge, name string) *testEndpoint {
	owner := name
	e := newTestEndpoint(t, b, name, r.onTrack(&owner))
	r.mu.Lock()
	r.endpoints = append(r.endpoints, e)
	for _, up := range r.tracks {
		if _, err := e.peer.Subscribe(up, up.ID(), up.StreamID()); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
	}
	r.mu.Unlock()
	return e
}

// drainRTCP reads a receiver's RTCP so the interceptors see the sender reports (as a
// browser does); without it receiver reports carry no LSR and no RTT can be measured.
func drainRTCP(r *webrtc.RTPReceiver) {
	for {
		if _, _, err := r.ReadRTCP(); err != nil {
			return
		}
	}
}
