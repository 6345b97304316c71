package sipgw

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// MaxSDPBytes bounds an SDP body: a room codec's offer is one or two kilobytes.
const MaxSDPBytes = 16 << 10

// maxMedia bounds the m-lines of an offer the gateway answers (audio, video, content,
// data: a room offers at most a handful).
const maxMedia = 8

// Codec names as the gateway negotiates them (also the codec label of cau_sip_* metrics).
const (
	codecPCMU = "pcmu"
	codecPCMA = "pcma"
	codecG722 = "g722"
	codecH264 = "h264"
	codecNone = "none"
)

// Static payload types of G.711 and G.722 (RFC 3551) and the dynamic one offered for
// H.264. G.722's RTP clock is 8 kHz (RFC 3551 §4.5.2, a historical error kept), its audio
// 16 kHz.
const (
	ptPCMU     = 0
	ptPCMA     = 8
	ptG722     = 9
	ptH264     = 96
	g711Rate   = 8000
	g722Rate   = 16000
	videoClock = 90000
)

// codecRate is the audio sample rate of an audio codec (not its RTP clock).
func codecRate(codec string) int {
	if codec == codecG722 {
		return g722Rate
	}
	return g711Rate
}

// h264Fmtp is what the gateway receives and sends: packetization mode 1 (RFC 6184) in
// Constrained Baseline, level 3.1, the profile every room codec and browser has.
const h264Fmtp = "packetization-mode=1;profile-level-id=" + h264ProfileLevel

// h264ProfileLevel is the profile-level-id of h264Fmtp.
const h264ProfileLevel = "42e01f"

// Errors of SDP handling; the SIP layer answers them with 400 or 488.
var (
	errBadSDP       = errors.New("malformed SDP")
	errNoCommonCode = errors.New("no common codec: the gateway takes G.722, PCMU or PCMA audio and H.264 packetization-mode 1 video over RTP/AVP(F)")
)

// media is one negotiated stream of a call: the remote end's address and the codec
// chosen from its description. A zero Port means the stream is off.
type media struct {
	Kind  string // "audio" or "video"
	Proto string // as offered: RTP/AVP, RTP/AVPF, RTP/SAVP or RTP/SAVPF (answered alike)
	Addr  netip.AddrPort
	// RTCP is where the remote end wants RTCP: its a=rtcp port, else the RTP port + 1;
	// with RTCPMux it is Addr.
	RTCP    netip.AddrPort
	RTCPMux bool
	PT      uint8
	Codec   string // codecG722, codecPCMU, codecPCMA, codecH264; codecNone when nothing matched
	// NarrowPT and NarrowCodec are the G.711 the remote end also offered when G.722 was
	// chosen (NarrowCodec empty if none): a call that runs at 8 kHz takes them instead.
	NarrowPT    uint8
	NarrowCodec string
	// PLI and FIR report that the remote end takes RTCP keyframe requests (RFC 4585
	// nack pli, RFC 5104 ccm fir); without either the gateway asks by SIP INFO.
	PLI, FIR bool
	// RemoteSends and RemoteRecvs are the remote end's direction (a=sendonly: it does
	// not receive; a=recvonly: it does not send).
	RemoteSends, RemoteRecvs bool
	// Key is the remote end's SDES key (its first usable a=crypto line, srtp.go): the
	// stream is SRTP. Nil for plain RTP.
	Key *sdesKey
	// H264 is what the remote end decodes of H.264 (h264params.go), for an H.264 video.
	H264 h264Caps
}

// description is what the gateway reads from a remote SDP: every m-line in order (an
// answer keeps them in the same order, a refused one with port 0), and the chosen audio
// and video among them (nil when none matched).
type description struct {
	Media        []media
	Audio, Video *media
	// VideoRefused says why a video the remote end offered is refused (answered with
	// port 0, the call audio-only): one of the videoRefused* reasons, "" when its video
	// was taken or it offered none.
	VideoRefused string
}

// Why a room's video is refused (description.VideoRefused, the reason label of
// cau_sip_video_refused_total and the call's view): a bounded set.
const (
	videoRefusedCodec = "codec"      // only codecs the gateway does not forward (VP8, H.263, …)
	videoRefusedMode0 = "h264_mode0" // H.264 without packetization-mode 1
	videoRefusedSRTP  = "srtp"       // no SDES keys while SRTP is mandatory
	videoRefusedProto = "transport"  // not RTP/AVP(F) or SRTP with a usable key
)

// videoRefusedText explains a refusal to a technician (logs, console).
var videoRefusedText = map[string]string{
	videoRefusedCodec: "the room offers no video codec the gateway forwards (H.264 packetization-mode 1 only; no VP8, H.263 or H.261)",
	videoRefusedMode0: "the room offers H.264 without packetization-mode 1 only",
	videoRefusedSRTP:  "the room's video has no SRTP keys and SRTP is mandatory",
	videoRefusedProto: "the room's video transport is not RTP/AVP(F), or its SRTP keys are unusable",
}

// parseDescription reads an offer or an answer. It never panics on any input (the fuzz
// target checks): a body it cannot read is errBadSDP, one with nothing it can carry is
// errNoCommonCode. With needSRTP a stream without SDES keys is refused, and a description
// that has only such streams is errSRTPRequired.
func parseDescription(body []byte, needSRTP bool) (*description, error) {
	if len(body) > MaxSDPBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", errBadSDP, MaxSDPBytes)
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(body)); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadSDP, err)
	}
	if len(sd.MediaDescriptions) == 0 || len(sd.MediaDescriptions) > maxMedia {
		return nil, fmt.Errorf("%w: %d media sections", errBadSDP, len(sd.MediaDescriptions))
	}
	sessAddr, _ := connAddr(sd.ConnectionInformation)
	sessRate := bandwidth(sd.Bandwidth)
	d := &description{}
	plainOnly := false // a stream was refused for want of SRTP only
	for _, md := range sd.MediaDescriptions {
		m := media{Kind: md.MediaName.Media, Proto: strings.Join(md.MediaName.Protos, "/"), Codec: codecNone}
		addr := sessAddr
		if a, ok := connAddr(md.ConnectionInformation); ok {
			addr = a
		}
		port := md.MediaName.Port.Value
		if port < 0 || port > 65535 {
			return nil, fmt.Errorf("%w: port %d", errBadSDP, port)
		}
		if port > 0 && addr.IsValid() && rtpProtos[m.Proto] {
			m.Addr = netip.AddrPortFrom(addr, uint16(port))
			readMedia(md, &m)
			if m.Codec == codecH264 {
				rate := bandwidth(md.Bandwidth)
				if rate == 0 {
					rate = sessRate
				}
				m.H264.MaxBitrate = minPositive(m.H264.MaxBitrate, rate)
			}
		}
		if needSRTP && m.Key == nil && m.Codec != codecNone {
			m.Codec, plainOnly = codecNone, true
			if m.Kind == "video" && d.VideoRefused == "" {
				d.VideoRefused = videoRefusedSRTP
			}
		}
		if m.Kind == "video" && port > 0 && m.Codec == codecNone && d.VideoRefused == "" {
			d.VideoRefused = videoRefusedProto
			if m.Addr.IsValid() && (!isSecureProto(m.Proto) || m.Key != nil) {
				d.VideoRefused = videoRefusal(md)
			}
		}
		d.Media = append(d.Media, m)
	}
	for i := range d.Media {
		m := &d.Media[i]
		switch {
		case m.Codec == codecNone:
		case m.Kind == "audio" && d.Audio == nil:
			d.Audio = m
		case m.Kind == "video" && d.Video == nil:
			d.Video, d.VideoRefused = m, ""
		default:
			m.Codec = codecNone // a second video (content) waits for BFCP support
		}
	}
	if d.Audio == nil && d.Video == nil {
		if plainOnly {
			return nil, errSRTPRequired
		}
		return nil, errNoCommonCode
	}
	return d, nil
}

// rtpProtos are the m-line transports the gateway answers: RTP and SRTP (SDES), with or
// without RTCP feedback.
var rtpProtos = map[string]bool{"RTP/AVP": true, "RTP/AVPF": true, "RTP/SAVP": true, "RTP/SAVPF": true}

// isSecureProto reports whether an m-line's transport is SRTP (which needs keys).
func isSecureProto(proto string) bool { return strings.HasPrefix(proto, "RTP/SAVP") }

// readMedia picks m's codec from md's formats (the first the gateway carries, in the
// remote end's order of preference, but G.722 before G.711: wideband wins) and reads
// its direction, RTCP port and feedback.
func readMedia(md *sdp.MediaDescription, m *media) {
	rtpmap := map[uint8]string{}
	fmtp := map[uint8]string{}
	m.RemoteSends, m.RemoteRecvs = true, true
	rtcpPort := int(m.Addr.Port()) + 1
	for _, a := range md.Attributes {
		switch a.Key {
		case "rtpmap", "fmtp":
			pt, rest, ok := strings.Cut(a.Value, " ")
			n, err := strconv.ParseUint(pt, 10, 7)
			if !ok || err != nil {
				continue
			}
			if a.Key == "rtpmap" {
				rtpmap[uint8(n)] = strings.ToUpper(rest)
			} else {
				fmtp[uint8(n)] = rest
			}
		case "rtcp-fb":
			_, fb, _ := strings.Cut(a.Value, " ")
			m.PLI = m.PLI || fb == "nack pli"
			m.FIR = m.FIR || fb == "ccm fir"
		case "rtcp-mux":
			m.RTCPMux = true
		case "rtcp":
			p, _, _ := strings.Cut(a.Value, " ")
			if n, err := strconv.ParseUint(p, 10, 16); err == nil && n > 0 {
				rtcpPort = int(n)
			}
		case "sendonly":
			m.RemoteRecvs = false
		case "recvonly":
			m.RemoteSends = false
		case "inactive":
			m.RemoteSends, m.RemoteRecvs = false, false
		case "crypto":
			if k, ok := parseCrypto(a.Value); ok && m.Key == nil {
				m.Key = &k
			}
		}
	}
	if isSecureProto(m.Proto) && m.Key == nil {
		return // SRTP without a key the gateway can use: refused (port 0)
	}
	if rtcpPort <= 65535 {
		m.RTCP = netip.AddrPortFrom(m.Addr.Addr(), uint16(rtcpPort))
	}
	if m.RTCPMux {
		m.RTCP = m.Addr
	}
	for _, f := range md.MediaName.Formats {
		n, err := strconv.ParseUint(f, 10, 7)
		if err != nil {
			continue
		}
		pt := uint8(n)
		name := rtpmap[pt]
		codec := codecNone
		switch {
		case m.Kind == "audio" && g722Available && (pt == ptG722 && name == "" || strings.HasPrefix(name, "G722/8000")):
			codec = codecG722
		case m.Kind == "audio" && (pt == ptPCMU && name == "" || strings.HasPrefix(name, "PCMU/8000")):
			codec = codecPCMU
		case m.Kind == "audio" && (pt == ptPCMA && name == "" || strings.HasPrefix(name, "PCMA/8000")):
			codec = codecPCMA
		case m.Kind == "video" && strings.HasPrefix(name, "H264/90000") && packetizationMode(fmtp[pt]) == "1":
			codec = codecH264
		}
		if (codec == codecPCMU || codec == codecPCMA) && m.NarrowCodec == "" {
			m.NarrowPT, m.NarrowCodec = pt, codec
		}
		if codec != codecNone && (m.Codec == codecNone || codec == codecG722) {
			m.PT, m.Codec = pt, codec
			if codec == codecH264 {
				parseH264Fmtp(fmtp[pt], &m.H264)
			}
		}
		if m.Codec == codecG722 || m.Codec == codecH264 {
			return
		}
	}
}

// videoRefusal tells why a video m-line had no codec the gateway takes: H.264 in
// packetization mode 0 only, or other codecs.
func videoRefusal(md *sdp.MediaDescription) string {
	for _, a := range md.Attributes {
		if a.Key == "rtpmap" {
			if _, name, ok := strings.Cut(a.Value, " "); ok && strings.HasPrefix(strings.ToUpper(name), "H264/") {
				return videoRefusedMode0
			}
		}
	}
	return videoRefusedCodec
}

// packetizationMode reads packetization-mode from an H.264 fmtp line ("0" when absent,
// RFC 6184 §8.1).
func packetizationMode(fmtp string) string {
	for _, kv := range strings.Split(fmtp, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if strings.EqualFold(k, "packetization-mode") {
			return strings.TrimSpace(v)
		}
	}
	return "0"
}

// bandwidth is the least bit rate among an m-line's (or the session's) b=TIAS and b=AS
// lines, in bit/s; 0 when there is none.
func bandwidth(bs []sdp.Bandwidth) int {
	rate := 0
	for _, b := range bs {
		if b.Bandwidth <= 1<<32 {
			rate = minPositive(rate, parseBandwidth(b.Type, int(b.Bandwidth)))
		}
	}
	return rate
}

// connAddr reads an IPv4 or IPv6 c= line.
func connAddr(c *sdp.ConnectionInformation) (netip.Addr, bool) {
	if c == nil || c.Address == nil || c.NetworkType != "IN" {
		return netip.Addr{}, false
	}
	host, _, _ := strings.Cut(c.Address.Address, "/") // a multicast TTL suffix
	a, err := netip.ParseAddr(host)
	return a, err == nil
}

// localMedia is the gateway's side of a stream: its RTP and RTCP ports, and its SDES key
// (Key, for an answer; Offer, the lines of an offer), nil for plain RTP.
type localMedia struct {
	RTP, RTCP uint16
	Key       *sdesKey
	Offer     []sdesKey
}

// sessionVersion numbers the gateway's SDP origin lines; it only needs to be unique per
// call, so one random value per description is enough.
// writeSession writes the session lines; version is the o= line's, raised by one with
// each new description of the session (a re-INVITE's answer).
func writeSession(b *strings.Builder, ip netip.Addr, id, version uint64) {
	fam := "IP4"
	if ip.Is6() {
		fam = "IP6"
	}
	fmt.Fprintf(b, "v=0\r\no=cau %d %d IN %s %s\r\ns=Cau\r\nc=IN %s %s\r\nt=0 0\r\n", id, version, fam, ip, fam, ip)
}

// writeCodec writes a stream's rtpmap (and for H.264 its fmtp, with profileLevel as
// profile-level-id, and feedback) lines.
func writeCodec(b *strings.Builder, codec string, pt uint8, profileLevel string) {
	switch codec {
	case codecPCMU:
		fmt.Fprintf(b, "a=rtpmap:%d PCMU/8000\r\n", pt)
	case codecPCMA:
		fmt.Fprintf(b, "a=rtpmap:%d PCMA/8000\r\n", pt)
	case codecG722:
		fmt.Fprintf(b, "a=rtpmap:%d G722/8000\r\n", pt)
	case codecH264:
		fmt.Fprintf(b, "a=rtpmap:%d H264/90000\r\na=fmtp:%d packetization-mode=1;profile-level-id=%s\r\n", pt, pt,
			profileLevel)
		fmt.Fprintf(b, "a=rtcp-fb:%d nack pli\r\na=rtcp-fb:%d ccm fir\r\n", pt, pt)
	}
}

// buildAnswer answers remote: every m-line in its order, the chosen audio and video on
// the gateway's ports with the one codec chosen, the rest refused (port 0).
func buildAnswer(remote *description, ip netip.Addr, id, version uint64, audio, video localMedia) []byte {
	var b strings.Builder
	writeSession(&b, ip, id, version)
	for i := range remote.Media {
		m := &remote.Media[i]
		var local localMedia
		switch m {
		case remote.Audio:
			local = audio
		case remote.Video:
			local = video
		default:
			proto := m.Proto
			if proto == "" {
				proto = "RTP/AVP"
			}
			fmt.Fprintf(&b, "m=%s 0 %s 0\r\n", sanitizeToken(m.Kind), sanitizeToken(proto))
			continue
		}
		fmt.Fprintf(&b, "m=%s %d %s %d\r\n", m.Kind, local.RTP, m.Proto, m.PT)
		writeCodec(&b, m.Codec, m.PT, m.H264.answerProfileLevelID())
		if local.Key != nil {
			b.WriteString(cryptoLine(local.Key))
		}
		if m.Kind == "audio" {
			b.WriteString("a=ptime:20\r\n")
		}
		if m.RTCPMux {
			b.WriteString("a=rtcp-mux\r\n")
		} else {
			fmt.Fprintf(&b, "a=rtcp:%d\r\n", local.RTCP)
		}
		b.WriteString(answerDirection(m))
	}
	return []byte(b.String())
}

// buildOffer is the gateway's offer for a call that arrived without one (late offer) or
// that it places: audio in both G.711 laws (first G.722 with wideband) and H.264 video,
// SRTP (RTP/SAVP, SAVPF) when the media carry Offer keys. A late offer is narrowband:
// its answer comes in the ACK, after the call joined the meeting at a fixed audio rate.
func buildOffer(ip netip.Addr, id uint64, audio, video localMedia, wideband bool) []byte {
	var b strings.Builder
	writeSession(&b, ip, id, id)
	s := ""
	if len(audio.Offer) > 0 {
		s = "S"
	}
	if wideband && g722Available {
		fmt.Fprintf(&b, "m=audio %d RTP/%sAVP %d %d %d\r\n", audio.RTP, s, ptG722, ptPCMU, ptPCMA)
		writeCodec(&b, codecG722, ptG722, "")
	} else {
		fmt.Fprintf(&b, "m=audio %d RTP/%sAVP %d %d\r\n", audio.RTP, s, ptPCMU, ptPCMA)
	}
	writeCodec(&b, codecPCMU, ptPCMU, "")
	writeCodec(&b, codecPCMA, ptPCMA, "")
	for i := range audio.Offer {
		b.WriteString(cryptoLine(&audio.Offer[i]))
	}
	fmt.Fprintf(&b, "a=ptime:20\r\na=rtcp:%d\r\na=sendrecv\r\n", audio.RTCP)
	fmt.Fprintf(&b, "m=video %d RTP/%sAVPF %d\r\n", video.RTP, s, ptH264)
	writeCodec(&b, codecH264, ptH264, h264ProfileLevel)
	for i := range video.Offer {
		b.WriteString(cryptoLine(&video.Offer[i]))
	}
	fmt.Fprintf(&b, "a=rtcp:%d\r\na=sendrecv\r\n", video.RTCP)
	return []byte(b.String())
}

func answerDirection(m *media) string {
	switch {
	case m.RemoteSends && m.RemoteRecvs:
		return "a=sendrecv\r\n"
	case m.RemoteRecvs: // the remote end only receives: the gateway only sends
		return "a=sendonly\r\n"
	case m.RemoteSends:
		return "a=recvonly\r\n"
	}
	return "a=inactive\r\n"
}

// sanitizeToken keeps a refused m-line's media and proto fields to SDP token characters,
// so nothing the remote end sent can inject lines into the answer.
func sanitizeToken(s string) string {
	s = strings.Map(func(r rune) rune {
		if r > ' ' && r < 0x7f {
			return r
		}
		return -1
	}, s)
	if s == "" || len(s) > 32 {
		return "unknown"
	}
	return s
}
