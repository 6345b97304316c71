package sipgw

import (
	"bytes"
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Media between the room and the meeting. Each socket and each received track has one
// reader goroutine, which owns its buffers and packet structs: nothing on the video
// path allocates per packet. Audio is transcoded (G.711 or G.722 ⇄ Opus, 20 ms frames).

const (
	opusPT       = 111
	frame8k      = g711Rate / 50 // samples in 20 ms of G.711 (and RTP ticks in 20 ms of G.711 or G.722)
	maxFrame     = g722Rate / 50 // samples in 20 ms at the highest audio rate (G.722's 16 kHz)
	opusTicks20  = 48000 / 50    // RTP ticks in 20 ms of Opus (48 kHz clock, RFC 7587)
	maxOpus8k    = 120 * 8       // samples in the longest Opus packet (120 ms) at 8 kHz
	mtu          = 1500
	keyframeGap  = 300 * time.Millisecond // at most one keyframe request to the room per gap
	switchTSGap  = videoClock / 30        // a frame's ticks between two sources' streams
	fastUpdateCT = "application/media_control+xml"
)

// fastUpdateXML is RFC 5168's picture_fast_update, for rooms without RTCP feedback.
const fastUpdateXML = `<?xml version="1.0" encoding="utf-8" ?><media_control><vc_primitive><to_encoder>` +
	`<picture_fast_update/></to_encoder></vc_primitive></media_control>`

// newAPI builds the WebRTC API of the calls' connections to their bridge: Opus and the
// bridge's H.264 profiles in packetization mode 1 (the room receives whichever a
// publisher sends; a VP8 publisher's video cannot reach a room: there is no transcoding),
// and RTCP reports so the bridge sees each call's RTT and loss.
func newAPI(loopback bool) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType: opusPT}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	fb := []webrtc.RTCPFeedback{{Type: "ccm", Parameter: "fir"}, {Type: "nack", Parameter: "pli"}}
	for i, profile := range []string{"42e01f", "42001f", "640c1f"} {
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: videoClock, RTCPFeedback: fb,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + profile},
			PayloadType: webrtc.PayloadType(102 + 2*i)}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	// No mDNS: nobody here resolves .local names, and each peer connection would open
	// multicast sockets and a reader goroutine for it (leaked past Close on a loaded box).
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	if loopback {
		se.SetIncludeLoopbackCandidate(true)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// isRTCP tells RTCP from RTP on a muxed port (RFC 5761 §4: payload types 64-95).
func isRTCP(b []byte) bool {
	return len(b) >= 2 && b[1] >= 192 && b[1] <= 223
}

// readRoomVideo forwards the room's H.264, packet by packet, to the meeting.
func (c *call) readRoomVideo(m *media) {
	buf := make([]byte, mtu)
	var pkt rtp.Packet
	for {
		n, ok, err := c.readRTP(c.video, buf)
		if err != nil {
			return
		}
		if !ok || pkt.Unmarshal(buf[:n]) != nil || pkt.PayloadType != m.PT {
			continue
		}
		c.roomVideoSSRC.Store(pkt.SSRC)
		c.packets.fromRoomVideo.Inc()
		c.videoStats.receivedPacket(&pkt.Header, n, time.Now())
		_ = c.toMeetingVideo.WriteRTP(&pkt)
	}
}

// readRoomAudio decodes the room's G.711 or G.722 and sends it to the meeting as 20 ms
// Opus packets. Without Opus (a build without cgo) it only latches.
func (c *call) readRoomAudio(m *media) {
	enc, err := newOpusEncoder(c.rate)
	if err != nil {
		c.log.Warn("sip call: the room's audio is not sent to the meeting", "err", err)
	} else {
		defer enc.close()
	}
	var wide *g722Decoder
	if m.Codec == codecG722 && enc != nil {
		if wide, err = newG722Decoder(); err != nil {
			c.log.Warn("sip call: the room's audio is not sent to the meeting", "err", err)
			enc = nil
		} else {
			defer wide.close()
		}
	}
	frame := c.rate / 50
	buf := make([]byte, mtu)
	out := make([]byte, mtu)
	pcm := make([]int16, 0, 4*maxOpus8k)
	var pkt rtp.Packet
	hdr := rtp.Header{Version: 2, PayloadType: opusPT, SSRC: uint32(randomID()), SequenceNumber: uint16(randomID()),
		Timestamp: uint32(randomID())}
	for {
		n, ok, err := c.readRTP(c.audio, buf)
		if err != nil {
			return
		}
		if !ok || enc == nil || pkt.Unmarshal(buf[:n]) != nil || pkt.PayloadType != m.PT {
			continue
		}
		c.packets.fromRoomAudio.Inc()
		c.audioStats.receivedPacket(&pkt.Header, n, time.Now())
		if len(pkt.Payload) > maxOpus8k {
			continue
		}
		start := len(pcm)
		if wide != nil { // two samples a byte
			pcm = pcm[:start+wide.decode(pkt.Payload, pcm[start:start+2*len(pkt.Payload)])]
		} else {
			pcm = pcm[:start+len(pkt.Payload)]
			g711Decode(m.Codec, pkt.Payload, pcm[start:])
		}
		for len(pcm) >= frame {
			hdr.SequenceNumber++
			hdr.Timestamp += opusTicks20
			h, err := hdr.MarshalTo(out)
			if err != nil {
				pcm = pcm[:copy(pcm, pcm[frame:])]
				continue
			}
			k, err := enc.encode(pcm[:frame], out[h:])
			pcm = pcm[:copy(pcm, pcm[frame:])]
			if err != nil {
				continue
			}
			_, _ = c.toMeetingAudio.Write(out[:h+k])
		}
	}
}

// readRTP reads the next datagram of l's RTP socket into buf (decrypted, on a secure
// leg: n is then the plain packet's length); ok is false for one that is not the call's
// RTP: RTCP on a muxed port (handled here), a packet that fails SRTP, or one from another
// address than the latched one.
func (c *call) readRTP(l *leg, buf []byte) (n int, ok bool, err error) {
	n, src, err := l.rtp.ReadFromUDPAddrPort(buf)
	if err != nil {
		return 0, false, err
	}
	if isRTCP(buf[:n]) {
		c.roomRTCP(l, buf[:n], src)
		return n, false, nil
	}
	p, ok := l.open(buf[:n], false) // SRTP: in place; only what authenticates is latched
	if !ok {
		return n, false, nil
	}
	return len(p), l.accept(src, false), nil
}

// readRoomRTCP reads a leg's RTCP socket.
func (c *call) readRoomRTCP(l *leg) {
	buf := make([]byte, mtu)
	for {
		n, src, err := l.rtcp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		c.roomRTCP(l, buf[:n], src)
	}
}

// roomRTCP handles the room's RTCP: its keyframe requests for the video it receives,
// and its reception reports on what the gateway sends it (jitter and loss, metrics).
// RTCP comes a few times a second: parsing it may allocate.
func (c *call) roomRTCP(l *leg, b []byte, src netip.AddrPort) {
	b, ok := l.open(b, true)
	if !ok || !l.accept(src, true) {
		return
	}
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		return
	}
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			if l == c.video {
				c.keyframeFromRoom()
			}
		case *rtcp.ReceiverReport:
			c.roomReports(l, p.Reports)
		case *rtcp.SenderReport:
			st, _, _ := c.legOf(l)
			st.roomSR(p, time.Now())
			c.roomReports(l, p.Reports)
		}
	}
}

// roomReports records the room's reception reports on the stream the gateway sends it
// on l: interarrival jitter (RFC 3550 §6.4.1, in the codec's clock) and the fraction
// lost since the last report.
func (c *call) roomReports(l *leg, reports []rtcp.ReceptionReport) {
	st, ssrc, kind := c.legOf(l)
	now := time.Now()
	for i := range reports {
		r := &reports[i]
		if r.SSRC != ssrc {
			continue
		}
		c.g.m.RoomJitter.WithLabelValues(kind).Observe(float64(r.Jitter) / st.clock)
		c.g.m.RoomLoss.WithLabelValues(kind).Observe(float64(r.FractionLost) / 256)
		if rtt := st.roomReport(r, now); rtt > 0 {
			c.g.m.RTT.WithLabelValues(kind).Observe(rtt.Seconds())
		}
	}
}

// keyframeFromRoom asks the bridge for a keyframe of the video the room is sent (or is
// about to be: a pending switch starts with one anyway).
func (c *call) keyframeFromRoom() {
	t := c.nextVideo.Load()
	if t == nil {
		t = c.fwdVideo.Load()
	}
	if t != nil {
		c.askKeyframe(t)
	}
}

// keyframeToRoom asks the room for a keyframe of its camera: RTCP PLI or FIR where its
// SDP offered them, else SIP INFO picture_fast_update (RFC 5168). Requests closer than
// keyframeGap are merged: several subscribers asking at once need one keyframe.
func (c *call) keyframeToRoom() {
	now := time.Now().UnixNano()
	last := c.lastFastReq.Load()
	if now-last < int64(keyframeGap) || !c.lastFastReq.CompareAndSwap(last, now) {
		return
	}
	m := c.remote()
	if m == nil || m.Video == nil {
		return
	}
	c.g.m.KeyframeRequests.WithLabelValues("to_room").Inc()
	v := m.Video
	var pkt rtcp.Packet
	switch {
	case v.PLI:
		pkt = &rtcp.PictureLossIndication{SenderSSRC: c.videoSSRC, MediaSSRC: c.roomVideoSSRC.Load()}
	case v.FIR:
		c.firSeq++
		pkt = &rtcp.FullIntraRequest{SenderSSRC: c.videoSSRC, MediaSSRC: c.roomVideoSSRC.Load(),
			FIR: []rtcp.FIREntry{{SSRC: c.roomVideoSSRC.Load(), SequenceNumber: c.firSeq}}}
	default:
		go c.fastUpdateInfo()
		return
	}
	if b, err := pkt.Marshal(); err == nil {
		_ = c.video.sendRTCP(b)
	}
}

// fastUpdateInfo sends picture_fast_update in a SIP INFO within the dialog.
func (c *call) fastUpdateInfo() {
	if c.peer.Host == "" {
		return
	}
	req := sip.NewRequest(sip.INFO, c.peer)
	req.AppendHeader(sip.NewHeader("Content-Type", fastUpdateCT))
	req.SetBody([]byte(fastUpdateXML))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.dlg.Do(ctx, req); err != nil {
		c.log.Debug("sip info picture_fast_update", "err", err)
	}
}

// isFastUpdate reports whether an INFO body is RFC 5168's picture_fast_update.
func isFastUpdate(body []byte) bool {
	return len(body) < 4096 && bytes.Contains(body, []byte("picture_fast_update"))
}

// forwardable reports whether the room can be sent t: H.264 video (a room decodes no
// VP8, and the gateway does not transcode video) or Opus audio (transcoded to G.711).
func forwardable(t *webrtc.TrackRemote) bool {
	switch t.Codec().MimeType {
	case webrtc.MimeTypeH264:
		return true
	case webrtc.MimeTypeOpus:
		return opusAvailable
	}
	return false
}

// onTrack runs for each track the meeting sends the call, for the track's life.
func (c *call) onTrack(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
	go func() { // the receiver's RTCP feeds the report interceptor
		for {
			if _, _, err := r.ReadRTCP(); err != nil {
				return
			}
		}
	}()
	if !forwardable(t) {
		c.log.Info("sip call: a meeting track the room cannot receive", "codec", t.Codec().MimeType)
	}
	if t.Kind() != webrtc.RTPCodecTypeVideo {
		c.forwardAudio(t)
		return
	}
	c.addVideo(t)
	defer c.removeVideo(t)
	c.forwardVideo(t)
}

// rewriter makes the packets of successive sources one RTP stream for the room: its
// SSRC and payload type, and sequence numbers and timestamps that continue across a
// switch. mu is held per packet (uncontended but for the moment of a switch, when the
// old source's reader may still be writing).
type rewriter struct {
	mu      sync.Mutex
	src     uint32
	started bool
	seqOff  uint16
	tsOff   uint32
	lastSeq uint16
	lastTS  uint32
}

func (r *rewriter) rewrite(h *rtp.Header, ssrc uint32, pt uint8, gap uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.started || h.SSRC != r.src {
		if r.started {
			r.seqOff = r.lastSeq + 1 - h.SequenceNumber
			r.tsOff = r.lastTS + gap - h.Timestamp
		}
		r.src = h.SSRC
		r.lastSeq, r.lastTS = h.SequenceNumber+r.seqOff-1, h.Timestamp+r.tsOff
		r.started = true
	}
	h.SequenceNumber += r.seqOff
	h.Timestamp += r.tsOff
	if d := int16(h.SequenceNumber - r.lastSeq); d > 0 {
		r.lastSeq, r.lastTS = h.SequenceNumber, h.Timestamp
	}
	h.SSRC, h.PayloadType = ssrc, pt
	// The bridge's header extensions are the WebRTC connection's, not the room's.
	h.Extension, h.Extensions, h.ExtensionProfile = false, h.Extensions[:0], 0
	h.Padding = false
}

// forwardVideo sends t's packets to the room while it is the room's video (follow.go).
func (c *call) forwardVideo(t *webrtc.TrackRemote) {
	buf := make([]byte, mtu)
	out := make([]byte, mtu)
	var pkt rtp.Packet
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		m := c.roomVideo.Load()
		if m == nil || !m.RemoteRecvs || pkt.Unmarshal(buf[:n]) != nil || !c.forwarding(t, &pkt) {
			continue
		}
		c.videoOut.rewrite(&pkt.Header, c.videoSSRC, m.PT, switchTSGap)
		k, err := pkt.MarshalTo(out)
		if err != nil {
			continue
		}
		if c.video.send(out[:k]) == nil {
			c.packets.toRoomVideo.Inc()
			c.videoStats.sent(pkt.Timestamp, len(pkt.Payload))
		}
	}
}

// drain reads t until it ends, for a track the room is not sent.
func drain(t *webrtc.TrackRemote, buf []byte) {
	for {
		if _, _, err := t.Read(buf); err != nil {
			return
		}
	}
}

// audioClock numbers the G.711 packets sent to the room, whatever track they came
// from: one sequence and one 8 kHz clock per call.
type audioClock struct {
	mu  sync.Mutex
	seq uint16
	ts  uint32
}

func (a *audioClock) next(h *rtp.Header, ssrc uint32, pt uint8) {
	a.mu.Lock()
	a.seq++
	a.ts += frame8k
	*h = rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: a.seq, Timestamp: a.ts, SSRC: ssrc,
		Extensions: h.Extensions[:0]}
	a.mu.Unlock()
}
