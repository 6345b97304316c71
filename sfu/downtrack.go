package sfu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// ErrCodecNotSupported is returned when a subscriber cannot receive a track's codec
// (the bridge forwards, it does not transcode).
var ErrCodecNotSupported = errors.New("sfu: subscriber does not support the codec")

// DownTrack forwards one UpTrack to one subscriber. It implements webrtc.TrackLocal so
// it can be added to the subscriber's peer connection; pion calls Bind once negotiation
// has settled the payload type and SSRC.
type DownTrack struct {
	id, streamID string
	up           *UpTrack
	sub          *Peer
	sender       *webrtc.RTPSender // set by the subscriber peer under its lock; read after

	binding atomic.Pointer[binding] // nil until Bind, nil again after Unbind
	// sim is the layer state when the source is simulcast (simulcast.go), nil otherwise.
	// Set at creation, read-only after.
	sim *downLayers
	// slot is set when this DownTrack is a slot's feeder (slot.go): it has no transceiver
	// of its own and writes into the slot; slotGen is its generation there (the slot's
	// rewriter's layer), read under slot.mu. Set at creation.
	slot    *Slot
	slotGen int8

	// Forwarding state, owned by the up track's fan-out: writeRTP runs for one packet at
	// a time, on the reader goroutine or one of its workers (fanPool orders them).
	started     bool
	firstInSeq  uint16
	seqOffset   uint16
	tsOffset    uint32
	scratch     rtp.Header // reused for every packet: no allocation per write
	levelExt    [1]byte    // the audio-level extension's payload, reused like scratch
	packetsSent atomic.Uint64
	bytesSent   atomic.Uint64 // RTP header and payload
	// resuming is set while a held track waits for its keyframe; heldFrom is the first
	// publisher's sequence number not sent (need.go). Fan-out only, like started.
	resuming bool
	heldFrom uint16

	// mapping is the fan-out's sequence and timestamp offsets, published when forwarding
	// starts for the NACK handler (readRTCP) to map a subscriber's sequence number back to
	// the publisher's, and so to the up track's packet cache.
	mapping atomic.Pointer[seqMapping]

	// Retransmission state, owned by readRTCP's goroutine, but rtxSeq: the link's prober
	// numbers its padding on the same RTX stream (probe.go).
	rtxSeq         atomic.Uint32
	rtxHdr         rtp.Header
	rtxBuf         [2 + maxCachedPayload]byte // RFC 4588: OSN, then the original payload
	resent, missed atomic.Uint64
	// nackTokens is the retransmission budget (see retransmitShare); nackSeen is
	// packetsSent when it was last topped up. Owned by readRTCP's goroutine.
	nackTokens float64
	nackSeen   uint64
	nackInit   bool

	// What the subscriber's receiver reports say about this track (RTCP RR), written by
	// readRTCP, read by Quality.
	rttMicros    atomic.Int64
	fractionLost atomic.Uint32 // 0..256 = 0..100 %
	jitterRTP    atomic.Uint32 // RFC 3550 interarrival jitter in RTP clock units
	reports      atomic.Uint64
	lastReport   atomic.Int64 // unix nanos

	// pinned is set while the subscriber pinned this source (SetPinned): its link's
	// allocator gives the source's layers first call on the bandwidth. Written by the
	// bridge's owner (signaling's commands), read by the allocator's goroutine.
	pinned atomic.Bool

	// Layers by need (need.go). maxLayer is the subscriber's cap (SetMaxLayer); need the
	// layer the bridge beyond a relay link needs (-1 none), as of needAt (its RTCP
	// reader writes both); want the layer this link's allocator would take of a relayed
	// layered source it cannot choose itself (-1 none). Read anywhere.
	maxLayer, need, want atomic.Int32
	needAt               atomic.Int64
	// held stops a track that is not simulcast (a relayed layer, or a relay link's
	// camera) while nobody beyond needs it; the allocator sets it, the fan-out reads it.
	held atomic.Bool
}

// SetPinned gives this track first call on its subscriber link's bandwidth (on), as a
// meeting's pinned source has on every link, or ends that.
func (d *DownTrack) SetPinned(on bool) { d.pinned.Store(on) }

// Simulcast reports whether the track forwards one of a simulcast source's layers.
func (d *DownTrack) Simulcast() bool { return d.sim != nil }

// Pinned reports whether the subscriber pinned this track's source (SetPinned).
func (d *DownTrack) Pinned() bool { return d.pinned.Load() }

// Quality is what a subscriber reports about one forwarded track.
type Quality struct {
	RTT          time.Duration // from RTCP LSR/DLSR; 0 until measured
	FractionLost float64       // 0..1, over the last report interval
	Jitter       time.Duration // RFC 3550 interarrival jitter
	Reports      uint64        // receiver reports seen
	LastReport   time.Time     // zero before the first
}

// Quality returns the latest receiver-report figures for this track.
func (d *DownTrack) Quality() Quality {
	q := Quality{
		RTT:          time.Duration(d.rttMicros.Load()) * time.Microsecond,
		FractionLost: float64(d.fractionLost.Load()) / 256,
		Reports:      d.reports.Load(),
	}
	if n := d.lastReport.Load(); n != 0 {
		q.LastReport = time.Unix(0, n)
	}
	if rate := d.up.codec.ClockRate; rate > 0 {
		q.Jitter = time.Duration(float64(d.jitterRTP.Load()) / float64(rate) * float64(time.Second))
	}
	return q
}

// noteReception records a reception report about this track. RTT follows RFC 3550 §6.4.1:
// arrival − LSR − DLSR, all in 1/65536 s.
func (d *DownTrack) noteReception(r rtcp.ReceptionReport, arrival time.Time) {
	d.reports.Add(1)
	d.lastReport.Store(arrival.UnixNano())
	d.fractionLost.Store(uint32(r.FractionLost))
	d.jitterRTP.Store(r.Jitter)
	if r.LastSenderReport == 0 {
		return
	}
	now := ntpMiddle32(arrival)
	rtt := now - r.LastSenderReport - r.Delay
	if int32(rtt) >= 0 {
		d.rttMicros.Store(int64(rtt) * 1_000_000 >> 16)
	}
}

// ntpMiddle32 is the middle 32 bits of the NTP timestamp of t (seconds since 1900, 16.16).
func ntpMiddle32(t time.Time) uint32 {
	const ntpEpochOffset = 2208988800
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return uint32((secs<<32 | frac) >> 16)
}

// binding is what Bind learnt from negotiation.
type binding struct {
	ssrc   uint32
	pt     uint8
	writer webrtc.TrackLocalWriter
	// rtxSSRC and rtxPT are the retransmission stream's (RFC 4588), 0 when the
	// subscriber did not negotiate RTX: then a lost packet is sent again as it was.
	rtxSSRC uint32
	rtxPT   uint8
	// levelID is the subscriber's RFC 6464 audio-level extension id, 0 if not
	// negotiated: a relay link's far end and a browser's speaker indicator read it.
	levelID uint8
	// codecs are a slot's negotiated codecs but RTX (slot.go: a source in any of them is
	// forwarded with its payload type); nil for a DownTrack.
	codecs []webrtc.RTPCodecParameters
}

// seqMapping is how a subscriber's numbering relates to the publisher's, fixed when
// forwarding starts (and again when it resumes after a skip).
type seqMapping struct {
	// firstIn is the oldest publisher's sequence number the subscriber may still be sent
	// (held in a uint32): the first packet forwarded, then, once the stream has gone far
	// past it, a packet seqKeep behind the newest (see advanceFirst).
	firstIn   atomic.Uint32
	seqOffset uint16
	tsOffset  uint32
	// cache holds the packets of the simulcast layer forwarded since firstIn; nil for a
	// track that is not simulcast (the up track's cache).
	cache *packetCache
}

func newSeqMapping(firstIn, seqOffset uint16, tsOffset uint32) *seqMapping {
	m := &seqMapping{seqOffset: seqOffset, tsOffset: tsOffset}
	m.firstIn.Store(uint32(firstIn))
	return m
}

// Sequence numbers are 16 bits: "older than the first packet" can only be told within
// half their range. Once the newest packet is seqAdvance past firstInSeq, firstInSeq
// moves up to seqKeep behind it, so a subscription keeps forwarding however long it lasts
// (it stopped after 32,768 packets before: two minutes of video at 300 packets a second)
// and a packet more than seqKeep late (seconds; the packet cache holds far fewer) is
// neither forwarded nor resent.
const (
	seqAdvance = 1 << 14
	seqKeep    = 1 << 12
)

// advanceFirst moves the window's start up behind seq, the newest packet forwarded.
// Caller is the fan-out (it owns firstInSeq); the NACK handler reads the mapping's copy.
func (d *DownTrack) advanceFirst(seq uint16) {
	if seq-d.firstInSeq < seqAdvance {
		return
	}
	d.firstInSeq = seq - seqKeep
	if m := d.mapping.Load(); m != nil {
		m.firstIn.Store(uint32(d.firstInSeq))
	}
}

func newDownTrack(up *UpTrack, sub *Peer, id, streamID string) *DownTrack {
	d := &DownTrack{id: id, streamID: streamID, up: up, sub: sub}
	d.maxLayer.Store(maxLayers - 1)
	d.need.Store(needUnknown)
	if up.sim != nil {
		d.sim = newDownLayers(up.sim, up.codec.ClockRate)
	}
	return d
}

// Bind implements webrtc.TrackLocal: it picks the subscriber's payload type for the
// publisher's codec.
func (d *DownTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	want := d.up.codec
	for _, c := range ctx.CodecParameters() {
		if strings.EqualFold(c.MimeType, want.MimeType) && fmtpCompatible(want, c) {
			b := &binding{ssrc: uint32(ctx.SSRC()), pt: uint8(c.PayloadType), writer: ctx.WriteStream()}
			for _, e := range ctx.HeaderExtensions() {
				if e.URI == sdp.AudioLevelURI && d.up.kind == webrtc.RTPCodecTypeAudio {
					b.levelID = uint8(e.ID)
				}
			}
			if rtx := uint32(ctx.SSRCRetransmission()); rtx != 0 {
				apt := strconv.Itoa(int(c.PayloadType))
				for _, r := range ctx.CodecParameters() {
					if strings.EqualFold(r.MimeType, webrtc.MimeTypeRTX) && fmtpValue(r.SDPFmtpLine, "apt") == apt {
						b.rtxSSRC, b.rtxPT = rtx, uint8(r.PayloadType)
					}
				}
			}
			d.binding.Store(b)
			return c, nil
		}
	}
	// The subscriber cannot decode this codec (an H.264-only endpoint and a VP8
	// publisher: the bridge forwards, it does not transcode). Failing Bind would fail
	// the whole answer, and with it every other track on the subscriber connection; so
	// the track is bound to a codec the subscriber accepted and left unbound for
	// forwarding: it stays silent, the rest of the connection works.
	if cs := ctx.CodecParameters(); len(cs) > 0 {
		d.sub.log.Warn("subscriber cannot receive the codec; track not forwarded", "track", d.id,
			"codec", want.MimeType, "subscriber_codec", cs[0].MimeType)
		return cs[0], nil
	}
	return webrtc.RTPCodecParameters{}, fmt.Errorf("bind %s (%s): %w", d.id, want.MimeType, ErrCodecNotSupported)
}

// fmtpCompatible matches H.264 by packetization mode and profile so a Baseline stream is not
// labelled High; other codecs match by MIME type alone.
func fmtpCompatible(pub, sub webrtc.RTPCodecParameters) bool {
	if !strings.EqualFold(pub.MimeType, webrtc.MimeTypeH264) {
		return true
	}
	return fmtpValue(pub.SDPFmtpLine, "packetization-mode") == fmtpValue(sub.SDPFmtpLine, "packetization-mode") &&
		h264Profile(pub.SDPFmtpLine) == h264Profile(sub.SDPFmtpLine)
}

func fmtpValue(line, key string) string {
	for _, kv := range strings.Split(line, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

// h264Profile is the profile_idc and constraint byte of profile-level-id (level ignored).
func h264Profile(line string) string {
	v := fmtpValue(line, "profile-level-id")
	if len(v) < 4 {
		return ""
	}
	return strings.ToLower(v[:4])
}

// Unbind implements webrtc.TrackLocal.
func (d *DownTrack) Unbind(webrtc.TrackLocalContext) error {
	d.binding.Store(nil)
	return nil
}

// ID implements webrtc.TrackLocal.
func (d *DownTrack) ID() string { return d.id }

// RID implements webrtc.TrackLocal: a subscriber gets one layer of a simulcast source as
// an ordinary track, so it has no RID.
func (d *DownTrack) RID() string { return "" }

// StreamID implements webrtc.TrackLocal.
func (d *DownTrack) StreamID() string { return d.streamID }

// Kind implements webrtc.TrackLocal.
func (d *DownTrack) Kind() webrtc.RTPCodecType { return d.up.kind }

// Up is the track this DownTrack forwards.
func (d *DownTrack) Up() *UpTrack { return d.up }

// Paused reports whether Last-N holds the track back now (its up track's gate is shut).
func (d *DownTrack) Paused() bool {
	g := d.up.gateNow()
	return g != nil && !g.on.Load()
}

// PacketsSent counts packets written to the subscriber.
func (d *DownTrack) PacketsSent() uint64 { return d.packetsSent.Load() }

// BytesSent counts the RTP bytes (header and payload, before SRTP) written to the
// subscriber.
func (d *DownTrack) BytesSent() uint64 { return d.bytesSent.Load() }

type writeResult uint8

const (
	writeOK writeResult = iota
	writeUnbound
	writeWaitingKeyframe
	writeSkipped
	writeFailed
)

// writeRTP rewrites one packet for this subscriber and sends it. Called from the up
// track's fan-out, one packet at a time.
//
// A video subscriber starts at a keyframe, so its decoder never sees a delta frame it
// cannot use. From then on its sequence numbers and timestamps are the publisher's plus a
// fixed offset: a retransmitted or reordered packet maps to the right slot, and a gap
// upstream stays a gap the subscriber can NACK.
func (d *DownTrack) writeRTP(hdr *rtp.Header, payload []byte, keyframe bool) writeResult {
	b := d.binding.Load()
	if b == nil || !d.sub.subConnected.Load() {
		return writeUnbound
	}
	// Held (nobody beyond needs it, need.go): nothing is sent; it resumes at a keyframe,
	// the numbering closed over what was held back.
	if d.held.Load() {
		if d.started && !d.resuming {
			d.resuming, d.heldFrom = true, hdr.SequenceNumber
		}
		return writeSkipped
	}
	if d.resuming {
		if !keyframe {
			return writeWaitingKeyframe
		}
		d.resuming = false
		d.seqOffset -= hdr.SequenceNumber - d.heldFrom
		d.firstInSeq = hdr.SequenceNumber
		d.mapping.Store(newSeqMapping(d.firstInSeq, d.seqOffset, d.tsOffset))
	}
	starting := !d.started
	if starting {
		if d.up.codecK != codecOther && !keyframe {
			return writeWaitingKeyframe
		}
		d.started = true
		d.firstInSeq = hdr.SequenceNumber
		// Random starting points (RFC 3550 §5.1) so two subscriptions never look alike.
		d.seqOffset = uint16(rand.Uint32()) - hdr.SequenceNumber
		d.tsOffset = rand.Uint32() - hdr.Timestamp
		d.mapping.Store(newSeqMapping(d.firstInSeq, d.seqOffset, d.tsOffset))
	} else if int16(hdr.SequenceNumber-d.firstInSeq) < 0 {
		return writeSkipped // older than our first packet: the subscriber never needs it
	} else {
		d.advanceFirst(hdr.SequenceNumber)
	}
	n, err := d.send(b, hdr, payload, hdr.SequenceNumber+d.seqOffset, hdr.Timestamp+d.tsOffset)
	if err != nil {
		return writeFailed
	}
	if n == 0 && starting {
		// SRTP was not ready after all: the keyframe did not leave, so wait for another.
		d.started = false
		d.mapping.Store(nil)
		return writeUnbound
	}
	d.packetsSent.Add(1)
	d.bytesSent.Add(uint64(d.scratch.MarshalSize() + len(payload)))
	return writeOK
}

// send writes one packet to the subscriber with its own SSRC and payload type and the
// given sequence number and timestamp, in the scratch header. Fan-out goroutine only.
func (d *DownTrack) send(b *binding, hdr *rtp.Header, payload []byte, seq uint16, ts uint32) (int, error) {
	s := &d.scratch
	s.Version = 2
	s.Padding = false
	s.Marker = hdr.Marker
	s.PayloadType = b.pt
	s.SequenceNumber = seq
	s.Timestamp = ts
	s.SSRC = b.ssrc
	s.CSRC = s.CSRC[:0]
	// The publisher's header extensions use its own negotiated ids; the interceptors add
	// the ones this subscriber negotiated (TWCC), so none are copied, except the audio
	// level, under the subscriber's id.
	s.Extension = false
	s.Extensions = s.Extensions[:0]
	if b.levelID != 0 && d.up.hasLevel {
		d.levelExt[0] = d.up.level
		_ = s.SetExtension(b.levelID, d.levelExt[:]) // cannot fail: one byte, id ≤ 14
	}
	return b.writer.WriteRTP(s, payload)
}

// readRTCP serves the subscriber's feedback for this track: picture loss and FIR become a
// throttled keyframe request to the publisher; NACKs are answered from the up track's
// packet cache.
func (d *DownTrack) readRTCP() {
	// One buffer for the goroutine's life, and the packets as the interceptors already
	// parsed them (hopstats reads every report): pion's ReadRTCP allocated an MTU-sized
	// buffer and parsed each packet a second time, for every RTCP packet of every
	// subscriber, which was most of the server's allocation in a steady meeting (issue 11).
	buf := make([]byte, rtcpReadSize)
	for {
		n, attrs, err := d.sender.Read(buf)
		if err != nil {
			return
		}
		pkts, err := attrs.GetRTCPPackets(buf[:n])
		if err != nil {
			continue // a malformed packet; the next may be fine
		}
		now := time.Now()
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				d.keyframeSource().RequestKeyframe()
			case *rtcp.ReceiverReport:
				d.noteReports(p.Reports, now)
			case *rtcp.SenderReport:
				d.noteReports(p.Reports, now)
			case *rtcp.TransportLayerNack:
				d.answerNACK(p)
			case *rtcp.ApplicationDefined:
				if p.Name == appNeed && d.sub.params.Relay {
					d.noteNeed(p, now)
				}
			}
		}
	}
}

// rtcpReadSize holds any RTCP datagram a subscriber sends (pion reads with a 1,460-byte MTU).
const rtcpReadSize = 1500

func (d *DownTrack) noteReports(reports []rtcp.ReceptionReport, now time.Time) {
	b := d.binding.Load()
	if b == nil {
		return
	}
	for _, r := range reports {
		if r.SSRC == b.ssrc {
			d.noteReception(r, now)
		}
	}
}

// A subscriber's NACKs may not make the bridge send much more than it forwards (issue 12,
// finding 9): retransmissions come from a token bucket that gains retransmitShare of a
// token per packet forwarded, holds at most retransmitBurst, and starts full. Real loss
// (a few percent, bursts of a frame or so) stays far inside it; a subscriber NACKing the
// whole cache again and again gets at most half its forwarded rate more.
const (
	retransmitShare = 0.5
	retransmitBurst = 64
)

// refillNACK tops the retransmission budget up for the packets forwarded since the last
// NACK. Runs on readRTCP's goroutine.
func (d *DownTrack) refillNACK() {
	sent := d.packetsSent.Load()
	if !d.nackInit {
		d.nackInit, d.nackTokens = true, retransmitBurst
	} else {
		d.nackTokens += retransmitShare * float64(sent-d.nackSeen)
	}
	d.nackSeen = sent
	d.nackTokens = min(d.nackTokens, retransmitBurst)
}

// answerNACK sends the packets a subscriber reports lost again, from the up track's cache,
// within the retransmission budget (packets over it count as missed). Runs on readRTCP's
// goroutine.
func (d *DownTrack) answerNACK(n *rtcp.TransportLayerNack) {
	b := d.binding.Load()
	if b == nil || n.MediaSSRC != b.ssrc || d.up.cache == nil {
		return
	}
	d.refillNACK()
	var sent, missed uint64
	for _, pair := range n.Nacks {
		pair.Range(func(seq uint16) bool {
			if d.nackTokens < 1 {
				missed++
				return true
			}
			if d.resend(b, seq) {
				d.nackTokens--
				sent++
			} else {
				missed++
			}
			return true
		})
	}
	d.resent.Add(sent)
	d.missed.Add(missed)
	if d.up.mRetransmits != nil {
		d.up.mRetransmits.Add(float64(sent))
		d.up.mRetransmitMissed.Add(float64(missed))
	}
}

// resend sends packet seq (the subscriber's numbering) again: as RTX when negotiated
// (RFC 4588: the original sequence number, then the payload, on the retransmission
// stream with its own numbering), else as the original packet.
func (d *DownTrack) resend(b *binding, seq uint16) bool {
	m := d.mapping.Load()
	if m == nil {
		return false
	}
	in := seq - m.seqOffset
	if int16(in-uint16(m.firstIn.Load())) < 0 {
		return false // before this subscriber's first packet
	}
	cache := m.cache
	if cache == nil {
		cache = d.up.cache
	}
	n, ts, marker, ok := cache.get(in, d.rtxBuf[2:])
	if !ok {
		return false
	}
	h := &d.rtxHdr
	h.Version, h.Padding, h.Marker = 2, false, marker
	h.PayloadType, h.SequenceNumber, h.Timestamp, h.SSRC = b.pt, seq, ts+m.tsOffset, b.ssrc
	h.CSRC = h.CSRC[:0]
	h.Extension, h.Extensions = false, h.Extensions[:0] // the interceptors add theirs (TWCC)
	payload := d.rtxBuf[2 : 2+n]
	if b.rtxSSRC != 0 {
		binary.BigEndian.PutUint16(d.rtxBuf[:2], seq)
		payload = d.rtxBuf[:2+n]
		h.SSRC, h.PayloadType, h.SequenceNumber = b.rtxSSRC, b.rtxPT, uint16(d.rtxSeq.Add(1)-1)
	}
	_, err := b.writer.WriteRTP(h, payload)
	return err == nil
}

// Retransmissions counts the NACKed packets sent again and those no longer cached.
func (d *DownTrack) Retransmissions() (resent, missed uint64) {
	return d.resent.Load(), d.missed.Load()
}

// upClosed is called by the up track when it ends. The subscriber's renegotiation waits
// (subscriberRemovalWait) when the track ended because its publisher left.
func (d *DownTrack) upClosed() {
	if d.slot != nil {
		d.slot.feederEnded(d)
		return
	}
	d.sub.removeDownTrack(d, !d.up.owner.isClosed())
}
