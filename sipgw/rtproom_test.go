package sipgw_test

import (
	"bytes"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/sdp/v3"

	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/testmedia"
)

// rtpRoom is a room codec written for tests: SIP by hand (rawUA) and RTP on its own
// sockets, so that a test can send chosen media (a tone, a clip of known size) and keep
// exactly what the gateway sent it: the H.264 as an Annex B stream for ffmpeg, the
// PCMU decoded.
type rtpRoom struct {
	t      *testing.T
	ua     *rawUA
	ruri   string
	callID string
	tag    string // the gateway's To tag
	cseq   int
	from   map[string]string // the From header, kept for requests in the dialog
	sdpVer int
	// noFeedback leaves RTCP feedback out of the room's SDP: the gateway must then ask
	// it for keyframes by SIP INFO.
	noFeedback bool
	// videoFmtp and videoBW are the room's H.264 fmtp and its video b= line ("" none).
	videoFmtp, videoBW string
	// layers counts the video packets received from a simulcast Synth by layer (low,
	// middle, top: the layer byte it writes, client.VideoLayerOffset).
	layers [3]atomic.Int64
	// keyframeAsked is set by a keyframe request (RTCP PLI or FIR, or SIP INFO when
	// served) and cleared when sendOnRequest sends the IDR; asks counts the requests.
	keyframeAsked atomic.Bool
	asks          atomic.Int64

	audio, video *net.UDPConn
	gwAudio      netip.AddrPort // where the gateway receives the room's media (its answer)
	gwVideo      netip.AddrPort

	mu     sync.Mutex   // guards what the readers fill
	annexB bytes.Buffer // the video received, depacketized
	pcm    []int16      // the audio received, decoded
	// spsAt is when each distinct SPS (its bytes) first reached the room.
	spsAt map[string]time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

// dialRTPRoom calls meeting from a new rtpRoom and waits for the 200 OK, which it ACKs.
func dialRTPRoom(t *testing.T, gw netip.AddrPort, meeting, name string) *rtpRoom {
	t.Helper()
	return dialRTPRoomWith(t, gw, meeting, name, true)
}

// dialRTPRoomWith is dialRTPRoom for a room that offers RTCP feedback (PLI) or not.
func dialRTPRoomWith(t *testing.T, gw netip.AddrPort, meeting, name string, feedback bool) *rtpRoom {
	t.Helper()
	return dialRTPRoomOffering(t, gw, meeting, name, roomOffer{noFeedback: !feedback})
}

// roomOffer is what an rtpRoom's SDP says beyond the defaults (H.264 Constrained
// Baseline 3.1 with PLI, no bandwidth line).
type roomOffer struct {
	noFeedback bool
	fmtp, bw   string // the H.264 fmtp parameters, the video's b= line
}

// dialRTPRoomOffering is dialRTPRoom for a room whose offer is o.
func dialRTPRoomOffering(t *testing.T, gw netip.AddrPort, meeting, name string, o roomOffer) *rtpRoom {
	t.Helper()
	r := &rtpRoom{t: t, ua: newRawUA(t, gw.String()), ruri: "sip:" + meeting + "@" + gw.String(),
		callID: fmt.Sprintf("rtproom-%s-%d", meeting, time.Now().UnixNano()), cseq: 1, stop: make(chan struct{}),
		spsAt: map[string]time.Time{}, noFeedback: o.noFeedback, videoFmtp: o.fmtp, videoBW: o.bw}
	if r.videoFmtp == "" {
		r.videoFmtp = "packetization-mode=1;profile-level-id=42e01f"
	}
	for _, c := range []**net.UDPConn{&r.audio, &r.video} {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		*c = conn
	}
	offer := r.offer("sendrecv")
	r.from = map[string]string{"From": fmt.Sprintf("%q <sip:room@127.0.0.1>;tag=from%s", name, r.callID)}
	from := r.from
	r.ua.send(r.ua.request("INVITE", r.ruri, r.callID, 1, "", from, offer))
	resp := r.ua.final("INVITE")
	if status(resp) != "200 OK" {
		t.Fatalf("INVITE: %q", status(resp))
	}
	r.tag = toTag(resp)
	r.ua.send(r.ua.request("ACK", r.ruri, r.callID, 1, r.tag, from, ""))
	_, body, _ := strings.Cut(resp, "\r\n\r\n")
	var d sdp.SessionDescription
	if err := d.UnmarshalString(body); err != nil {
		t.Fatalf("the gateway's answer: %v\n%s", err, body)
	}
	ip, _ := netip.ParseAddr(d.ConnectionInformation.Address.Address)
	for _, m := range d.MediaDescriptions {
		ap := netip.AddrPortFrom(ip, uint16(m.MediaName.Port.Value))
		if m.MediaName.Media == "audio" {
			r.gwAudio = ap
		} else {
			r.gwVideo = ap
		}
	}
	r.wg.Add(2)
	go r.readVideo()
	go r.readAudio()
	t.Cleanup(r.close)
	return r
}

// offer is the room's SDP with the given direction on both streams.
func (r *rtpRoom) offer(direction string) string {
	r.sdpVer++
	fb := "a=rtcp-fb:96 nack pli\r\n"
	if r.noFeedback {
		fb = ""
	}
	return fmt.Sprintf("v=0\r\no=- 1 %d IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n", r.sdpVer) +
		fmt.Sprintf("m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtcp-mux\r\na=%s\r\n", port(r.audio), direction) +
		fmt.Sprintf("m=video %d RTP/AVPF 96\r\n%sa=rtpmap:96 H264/90000\r\n", port(r.video), bwLine(r.videoBW)) +
		"a=fmtp:96 " + r.videoFmtp + "\r\n" + fb + "a=rtcp-mux\r\n" +
		"a=" + direction + "\r\n"
}

// reinvite sends a re-INVITE with direction (hold: sendonly) and returns the gateway's
// answer once ACKed.
func (r *rtpRoom) reinvite(direction string) string {
	r.t.Helper()
	r.cseq++
	r.ua.send(r.ua.request("INVITE", r.ruri, r.callID, r.cseq, r.tag, r.from, r.offer(direction)))
	resp := r.ua.final("INVITE")
	if status(resp) != "200 OK" {
		r.t.Fatalf("re-INVITE %s: %q", direction, status(resp))
	}
	r.ua.send(r.ua.request("ACK", r.ruri, r.callID, r.cseq, r.tag, r.from, ""))
	_, body, _ := strings.Cut(resp, "\r\n\r\n")
	return body
}

func bwLine(b string) string {
	if b == "" {
		return ""
	}
	return b + "\r\n"
}

func port(c *net.UDPConn) int { return c.LocalAddr().(*net.UDPAddr).Port }

func (r *rtpRoom) close() {
	select {
	case <-r.stop:
		return
	default:
	}
	close(r.stop)
	_ = r.audio.Close()
	_ = r.video.Close()
	r.wg.Wait()
}

// hangup sends BYE.
func (r *rtpRoom) hangup() {
	r.cseq++
	r.ua.send(r.ua.request("BYE", r.ruri, r.callID, r.cseq, r.tag, nil, ""))
	r.ua.final("BYE")
	r.close()
}

// readMedia reads conn until it closes: RTCP (packet types 192–223, RFC 5761) goes to
// readRTCP, answered towards gw, and each RTP packet to onRTP.
func (r *rtpRoom) readMedia(conn *net.UDPConn, gw netip.AddrPort, onRTP func(*rtp.Packet)) {
	defer r.wg.Done()
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return
		}
		if n >= 2 && buf[1] >= 192 && buf[1] <= 223 {
			r.readRTCP(conn, gw, buf[:n])
			continue
		}
		if pkt.Unmarshal(buf[:n]) == nil {
			onRTP(&pkt)
		}
	}
}

// readVideo counts the layers the gateway forwards and keeps the H.264 it sends (Annex
// B) and when each distinct SPS first came.
func (r *rtpRoom) readVideo() {
	var h264 codecs.H264Packet
	r.readMedia(r.video, r.gwVideo, func(pkt *rtp.Packet) {
		if len(pkt.Payload) > client.VideoLayerOffset {
			if l := pkt.Payload[client.VideoLayerOffset]; l >= 1 && l <= 3 {
				r.layers[l-1].Add(1)
			}
		}
		au, err := h264.Unmarshal(pkt.Payload)
		if err != nil || len(au) == 0 {
			return
		}
		now := time.Now()
		r.mu.Lock()
		defer r.mu.Unlock()
		r.annexB.Write(au)
		for _, nal := range nalUnits(au) {
			if nal[0]&0x1f == 7 {
				if _, ok := r.spsAt[string(nal)]; !ok {
					r.spsAt[string(nal)] = now
				}
			}
		}
	})
}

// readAudio decodes the gateway's PCMU into pcm.
func (r *rtpRoom) readAudio() {
	r.readMedia(r.audio, r.gwAudio, func(pkt *rtp.Packet) {
		if pkt.PayloadType != 0 {
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, b := range pkt.Payload {
			r.pcm = append(r.pcm, ulawToLinear(b))
		}
	})
}

// every runs send(i) every interval, i counting from 0, until the room closes.
func (r *rtpRoom) every(interval time.Duration, send func(i int)) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-r.stop:
				return
			case <-tick.C:
			}
			send(i)
		}
	}()
}

// sendTone sends a continuous sine of freq Hz (amplitude 8000) as 20 ms PCMU packets
// until the room closes.
func (r *rtpRoom) sendTone(freq float64) {
	dst := net.UDPAddrFromAddrPort(r.gwAudio)
	hdr := rtp.Header{Version: 2, PayloadType: 0, SSRC: 0x1234}
	r.every(20*time.Millisecond, func(i int) {
		payload := make([]byte, 160)
		for j := range payload {
			n := float64(i*160 + j)
			payload[j] = linearToUlaw(int16(8000 * math.Sin(2*math.Pi*freq*n/8000)))
		}
		hdr.SequenceNumber++
		hdr.Timestamp += 160
		b, _ := (&rtp.Packet{Header: hdr, Payload: payload}).Marshal()
		_, _ = r.audio.WriteToUDP(b, dst)
	})
}

// sendClip sends clip's H.264 frames in a loop at testmedia.FPS until the room closes.
func (r *rtpRoom) sendClip(clip *testmedia.Clip) {
	dst := net.UDPAddrFromAddrPort(r.gwVideo)
	pz := rtp.NewPacketizer(1200, 96, 0x5678, &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000)
	r.every(time.Second/testmedia.FPS, func(i int) {
		for _, p := range pz.Packetize(clip.Video[i%len(clip.Video)], 90000/testmedia.FPS) {
			if b, err := p.Marshal(); err == nil {
				_, _ = r.video.WriteToUDP(b, dst)
			}
		}
	})
}

// readRTCP notes the gateway's keyframe requests (PLI, FIR) among its RTCP, and answers
// its sender reports at once with a receiver report (LSR, DLSR 0) on conn to dst, as a
// room codec reports, so that the gateway can measure the round trip.
func (r *rtpRoom) readRTCP(conn *net.UDPConn, dst netip.AddrPort, b []byte) {
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		return
	}
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			r.asks.Add(1)
			r.keyframeAsked.Store(true)
		case *rtcp.SenderReport:
			rr := &rtcp.ReceiverReport{SSRC: 0x9abc, Reports: []rtcp.ReceptionReport{{SSRC: p.SSRC,
				LastSenderReport: uint32(p.NTPTime >> 16)}}}
			if b, err := rr.Marshal(); err == nil {
				_, _ = conn.WriteToUDPAddrPort(b, dst)
			}
		}
	}
}

// layerPackets is the video packets received so far by simulcast layer.
func (r *rtpRoom) layerPackets() [3]int64 {
	return [3]int64{r.layers[0].Load(), r.layers[1].Load(), r.layers[2].Load()}
}

// sendOnRequest sends clip's frames at testmedia.FPS as a room codec with a very long
// GOP would: an IDR (the clip's first frame, with SPS and PPS) at the start and then only
// when asked for one, predicted frames otherwise. So every IDR after the first answers
// a keyframe request.
func (r *rtpRoom) sendOnRequest(clip *testmedia.Clip) {
	dst := net.UDPAddrFromAddrPort(r.gwVideo)
	pz := rtp.NewPacketizer(1200, 96, 0x5678, &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000)
	r.keyframeAsked.Store(true)
	next := 1
	r.every(time.Second/testmedia.FPS, func(int) {
		frame := clip.Video[next]
		if r.keyframeAsked.Swap(false) {
			frame = clip.Video[0]
		} else if next++; next >= testmedia.FPS { // frames 1..FPS-1: the clip's second IDR is at FPS
			next = 1
		}
		for _, p := range pz.Packetize(frame, 90000/testmedia.FPS) {
			if b, err := p.Marshal(); err == nil {
				_, _ = r.video.WriteToUDP(b, dst)
			}
		}
	})
}

// serveINFO answers the gateway's SIP INFO requests (picture_fast_update: a keyframe
// request) until the returned stop is called; the room's SIP socket is its own
// meanwhile.
func (r *rtpRoom) serveINFO() (stop func()) {
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			select {
			case <-quit:
				return
			default:
			}
			_ = r.ua.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			n, err := r.ua.conn.Read(buf)
			if err != nil {
				continue
			}
			if msg := string(buf[:n]); strings.HasPrefix(msg, "INFO ") {
				_, _ = r.ua.conn.Write([]byte(okTo(msg)))
				if strings.Contains(msg, "picture_fast_update") {
					r.asks.Add(1)
					r.keyframeAsked.Store(true)
				}
			}
		}
	}()
	return func() { close(quit); <-done }
}

// spsTime is when the room first received sps (zero if not yet).
func (r *rtpRoom) spsTime(sps []byte) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.spsAt[string(sps)]
}

// clipSPS is the SPS of an H.264 clip (its first frame's).
func clipSPS(t *testing.T, c *testmedia.Clip) []byte {
	t.Helper()
	for _, nal := range nalUnits(c.Video[0]) {
		if nal[0]&0x1f == 7 {
			return nal
		}
	}
	t.Fatal("the clip's first frame has no SPS")
	return nil
}

// nalUnits splits an Annex B stream into its NAL units.
func nalUnits(b []byte) [][]byte {
	var out [][]byte
	for _, part := range bytes.Split(b, []byte{0, 0, 1}) {
		part = bytes.TrimRight(part, "\x00")
		if len(part) > 0 {
			out = append(out, part)
		}
	}
	return out
}

// receivedVideo writes the H.264 received so far to a file for ffmpeg.
func (r *rtpRoom) receivedVideo() string {
	r.mu.Lock()
	b := bytes.Clone(r.annexB.Bytes())
	r.mu.Unlock()
	p := filepath.Join(r.t.TempDir(), "received.h264")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		r.t.Fatal(err)
	}
	return p
}

// videoBytes is how much H.264 the room has received.
func (r *rtpRoom) videoBytes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.annexB.Len()
}

// tonePower is the power of freq Hz in the last d of audio received, relative to the
// whole signal's (0..1, Goertzel).
func (r *rtpRoom) tonePower(freq float64, d time.Duration) float64 {
	r.mu.Lock()
	n := int(d.Seconds() * 8000)
	pcm := r.pcm[max(0, len(r.pcm)-n):]
	pcm = append([]int16(nil), pcm...)
	r.mu.Unlock()
	return relativePower(pcm, freq)
}

// audioSamples is how much audio the room has received.
func (r *rtpRoom) audioSamples() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pcm)
}

// relativePower is the share of pcm's energy at freq Hz (8 kHz samples), by Goertzel
// over 20 ms blocks.
func relativePower(pcm []int16, freq float64) float64 {
	var at, total float64
	const block = 160
	coeff := 2 * math.Cos(2*math.Pi*freq/8000)
	for i := 0; i+block <= len(pcm); i += block {
		var s1, s2 float64
		for _, x := range pcm[i : i+block] {
			v := float64(x)
			total += v * v
			s := v + coeff*s1 - s2
			s2, s1 = s1, s
		}
		at += (s1*s1 + s2*s2 - coeff*s1*s2) * 2 / block
	}
	if total == 0 {
		return 0
	}
	return at / total
}

// G.711 µ-law (the test's own, independent of the gateway's tables).
func ulawToLinear(u byte) int16 {
	u = ^u
	t := (int(u&0x0f) << 3) + 0x84
	t <<= (u & 0x70) >> 4
	if u&0x80 != 0 {
		return int16(0x84 - t)
	}
	return int16(t - 0x84)
}

func linearToUlaw(s int16) byte {
	const bias, clip = 0x84, 32635
	sign := byte(0)
	v := int(s)
	if v < 0 {
		v, sign = -v, 0x80
	}
	v = min(v, clip) + bias
	exp := byte(7)
	for mask := 0x4000; v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := byte(v>>(exp+3)) & 0x0f
	return ^(sign | exp<<4 | mant)
}
