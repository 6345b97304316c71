package sfu

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Slots (issue 10): a subscriber that asks for them receives a fixed set of tracks,
// negotiated once, instead of one track per published stream. Each Slot forwards one
// source at a time, and can be pointed at another (Point) without renegotiation: the
// bridge rewrites SSRC, sequence numbers and timestamps so the subscriber sees one
// continuous stream per slot, as the simulcast layer switch does (rewrite.go). A video
// slot changes source only at a keyframe of the new source (asked for at once). A large
// discussion meeting thus costs each subscriber a bounded number of m-sections whatever
// the number of publishers, and a publisher joining renegotiates nobody.
//
// How a slot is fed: pointing it at an up track adds a feeder (a DownTrack without a
// transceiver, slot set) to that track's fan-out. During a switch two feeders, the
// source left and the one switched to, may write at once from their readers; they take
// turns at the slot's rewriter under Slot.mu. The feeder of the source left is removed
// when the new source's first packet goes out.

// Slot is one of a subscriber's fixed receive tracks. It implements webrtc.TrackLocal.
type Slot struct {
	id, streamID string
	kind         webrtc.RTPCodecType
	sub          *Peer
	sender       *webrtc.RTPSender // set by AddSlot under the peer's lock; read after
	// pad sends a video slot's link probes (padding on the slot's RTX stream, probe.go):
	// a DownTrack without a source, bound with the slot. Set by AddSlot, nil for audio.
	pad *DownTrack

	binding atomic.Pointer[binding] // nil until Bind, nil again after Unbind
	// clockRate is the bound codec's RTP clock (90 kHz for every video codec, 48 kHz for
	// Opus). Set by Bind, read under mu.
	clockRate uint32

	// ctl serialises the changes of feeders (Point, the allocator's setLayer, SetCaps):
	// each adds and removes feeders in up tracks' fan-outs after deciding under mu, and
	// two at once could leave a feeder behind. Never taken by a fan-out.
	ctl sync.Mutex
	// Layers of a video slot (slotlayer.go). target is the simulcast layer the slot takes
	// of its source (set when a feeder starts, -1 before the first); maxLayer the cap of
	// the tile that shows the source now (-1: hidden, nothing is forwarded), from caps,
	// the slot set's caps by source (nil: none). Written under ctl, read anywhere.
	target, maxLayer atomic.Int32
	// want is the allocator's choice of layer for a relayed layered source (one track
	// whose layer the bridge before switches): its feeders want it (need.go).
	want atomic.Int32
	caps *atomic.Pointer[tileCaps]

	// mu guards the forwarding state below: the feeders' fan-outs take it per packet,
	// Point and the RTCP reader to change or read the mapping. Uncontended, it costs no
	// allocation.
	mu sync.Mutex
	rw layerRewriter // the feeders' generations stand for the rewriter's layers
	// cur feeds the packets forwarded now, next the source switched to (until its first
	// packet, at a keyframe for video); either may be nil.
	cur, next *DownTrack
	gen       int8 // generation of the newest feeder
	// pt is the payload type the current writer's packets go with (its source's codec as
	// the subscriber negotiated it), for feeder ptFor under binding ptOf; set by write.
	pt       uint8
	ptFor    *DownTrack
	ptOf     *binding
	source   string
	src      *UpTrack   // the source pointed at (its primary track), nil for none
	scratch  rtp.Header // fan-out's header, reused
	levelExt [1]byte
	nackHdr  rtp.Header // the RTCP reader's header, reused
	nackBuf  [maxCachedPayload]byte

	packetsSent atomic.Uint64
	bytesSent   atomic.Uint64 // RTP header and payload
	switches    atomic.Uint64 // sources started (the first included)
}

// AddSlot adds a fixed receive track of kind to the subscriber connection; it forwards
// nothing until pointed at a source (Point). The connection is renegotiated shortly after
// (changes are batched), and never again for the slot's changes of source.
func (p *Peer) AddSlot(kind webrtc.RTPCodecType, trackID, streamID string) (*Slot, error) {
	s := &Slot{id: trackID, streamID: streamID, kind: kind, sub: p}
	s.rw.resume = true
	s.target.Store(-1)
	s.maxLayer.Store(maxLayers - 1)
	if kind == webrtc.RTPCodecTypeVideo {
		s.pad = &DownTrack{id: trackID, streamID: streamID, sub: p}
	}
	var alloc *allocator
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	sender, err := p.sub.AddTrack(s)
	if err != nil {
		p.mu.Unlock()
		return nil, fmt.Errorf("add slot %s to %s: %w", trackID, p.params.ID, err)
	}
	s.sender = sender
	if p.slots == nil {
		p.slots = map[*Slot]struct{}{}
	}
	p.slots[s] = struct{}{}
	if kind == webrtc.RTPCodecTypeVideo && p.alloc == nil {
		// The link's allocator chooses the video slots' layers (slotalloc.go).
		p.alloc = newAllocator(p)
		alloc = p.alloc
	}
	p.mu.Unlock()
	if alloc != nil {
		go alloc.run()
	}
	go s.readRTCP()
	p.scheduleOffer(true)
	return s, nil
}

// Slots returns the peer's slots.
func (p *Peer) Slots() []*Slot {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*Slot, 0, len(p.slots))
	for s := range p.slots {
		out = append(out, s)
	}
	return out
}

// Bind implements webrtc.TrackLocal: the slot takes the subscriber's first codec of its
// kind (the bridge's preference: Opus, VP8) as the one it announces, and keeps the others
// the subscriber negotiated: a source in one of those (an H.264 publisher in a VP8
// slot) is forwarded with that codec's payload type, as RTP allows on one SSRC; the
// subscriber's decoder follows the payload type (a browser, pion's TrackRemote). A source
// in a codec the subscriber did not negotiate is not pointed at.
func (s *Slot) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	var first *webrtc.RTPCodecParameters
	b := &binding{ssrc: uint32(ctx.SSRC()), writer: ctx.WriteStream()}
	for _, c := range ctx.CodecParameters() {
		if strings.EqualFold(c.MimeType, webrtc.MimeTypeRTX) {
			continue
		}
		if first == nil {
			first = &c
			b.pt = uint8(c.PayloadType)
		}
		b.codecs = append(b.codecs, c)
	}
	if first == nil {
		return webrtc.RTPCodecParameters{}, fmt.Errorf("bind slot %s: %w", s.id, ErrCodecNotSupported)
	}
	for _, e := range ctx.HeaderExtensions() {
		if e.URI == sdp.AudioLevelURI && s.kind == webrtc.RTPCodecTypeAudio {
			b.levelID = uint8(e.ID)
		}
	}
	if rtx := uint32(ctx.SSRCRetransmission()); rtx != 0 {
		// The RTX stream carries the link's probes (probe.go); lost packets are sent
		// again as they were (answerNACK).
		apt := strconv.Itoa(int(first.PayloadType))
		for _, r := range ctx.CodecParameters() {
			if strings.EqualFold(r.MimeType, webrtc.MimeTypeRTX) && fmtpValue(r.SDPFmtpLine, "apt") == apt {
				b.rtxSSRC, b.rtxPT = rtx, uint8(r.PayloadType)
			}
		}
	}
	if s.pad != nil {
		s.pad.binding.Store(b)
	}
	s.mu.Lock()
	s.clockRate = first.ClockRate
	s.rw.clockRate = first.ClockRate
	s.mu.Unlock()
	s.binding.Store(b)
	return *first, nil
}

// payloadType is the payload type b's subscriber negotiated for codec, and whether it
// did: an H.264 source takes the H.264 variant of its packetization mode and profile,
// else of its packetization mode (a decoder takes any profile it can decode; the
// profile in the SDP labels it).
func (b *binding) payloadType(codec webrtc.RTPCodecParameters) (uint8, bool) {
	loose, found := uint8(0), false
	for _, c := range b.codecs {
		if !strings.EqualFold(c.MimeType, codec.MimeType) {
			continue
		}
		if fmtpCompatible(codec, c) {
			return uint8(c.PayloadType), true
		}
		if !found && fmtpValue(codec.SDPFmtpLine, "packetization-mode") == fmtpValue(c.SDPFmtpLine, "packetization-mode") {
			loose, found = uint8(c.PayloadType), true
		}
	}
	return loose, found
}

// Unbind implements webrtc.TrackLocal.
func (s *Slot) Unbind(webrtc.TrackLocalContext) error {
	s.binding.Store(nil)
	if s.pad != nil {
		s.pad.binding.Store(nil)
	}
	return nil
}

// ID implements webrtc.TrackLocal.
func (s *Slot) ID() string { return s.id }

// RID implements webrtc.TrackLocal.
func (s *Slot) RID() string { return "" }

// StreamID implements webrtc.TrackLocal.
func (s *Slot) StreamID() string { return s.streamID }

// Kind implements webrtc.TrackLocal.
func (s *Slot) Kind() webrtc.RTPCodecType { return s.kind }

// Mid is the slot's media id in the subscriber's session ("" before negotiation): what a
// page matches a slot map against.
func (s *Slot) Mid() string {
	if s.sender == nil {
		return ""
	}
	for _, tr := range s.sub.sub.GetTransceivers() {
		if tr.Sender() == s.sender {
			return tr.Mid()
		}
	}
	return ""
}

// Source is the source the slot was last pointed at ("" for none).
func (s *Slot) Source() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.source
}

// PacketsSent counts the packets written to the subscriber.
func (s *Slot) PacketsSent() uint64 { return s.packetsSent.Load() }

// BytesSent counts the RTP bytes (header and payload, before SRTP) written to the
// subscriber.
func (s *Slot) BytesSent() uint64 { return s.bytesSent.Load() }

// Switches counts the sources the slot started forwarding (at their first packet).
func (s *Slot) Switches() uint64 { return s.switches.Load() }

// Point makes the slot forward up (a publisher's track, the primary of a simulcast
// source; layer is the highest simulcast layer to take) labelled source, or nothing
// (up nil). A simulcast source starts at the slot's layer (the allocator's choice, the
// lowest before its first), never above the cap of the source's tile, and nothing while
// the tile is hidden (slotlayer.go). The packets of the source left go on until the new
// one's first packet (its keyframe, asked for now, for video). A source in a codec the
// subscriber did not negotiate is not forwarded (false).
func (s *Slot) Point(up *UpTrack, source string, layer int) bool {
	s.ctl.Lock()
	defer s.ctl.Unlock()
	if up != nil && up.kind != s.kind {
		return false
	}
	s.maxLayer.Store(int32(s.capOf(source)))
	return s.point(up, source, min(layer, s.layerNow()), false)
}

// point is Point's change of feeders: to layer of up (the nearest present below, else
// above), or none while the tile is hidden. With cut, a step down within the source
// stops the layer forwarded now at once, as setLayer's cut (simulcast.go). Caller holds
// ctl.
func (s *Slot) point(up *UpTrack, source string, layer int, cut bool) bool {
	if !s.accepts(up) {
		up = nil
	}
	hidden := up != nil && s.maxLayer.Load() < 0
	var feed *UpTrack
	if up != nil && !hidden {
		feed = up
		if up.sim != nil {
			feed = nearestLayer(up.sim, layer)
		}
	}
	tileCap := max(s.maxLayer.Load(), 0)
	s.mu.Lock()
	switch {
	case up == nil && s.cur == nil && s.next == nil,
		hidden && s.src == up && s.cur == nil && s.next == nil,
		feed != nil && s.src == up && s.next != nil && s.next.up == feed,
		feed != nil && s.src == up && s.next == nil && s.cur != nil && s.cur.up == feed:
		s.src, s.source = up, source
		for _, d := range []*DownTrack{s.cur, s.next} {
			if d != nil {
				d.maxLayer.Store(tileCap)
			}
		}
		s.mu.Unlock()
		return up != nil // pointed there already
	}
	var drop []*DownTrack
	if s.next != nil {
		drop = append(drop, s.next)
		s.next = nil
	}
	s.src, s.source = up, source
	if feed != nil && s.cur != nil && s.cur.up == feed {
		// Back to the layer forwarded while a switch was pending: keep it.
		s.cur.maxLayer.Store(tileCap)
		s.mu.Unlock()
		for _, d := range drop {
			d.up.removeDown(d)
		}
		return true
	}
	if feed == nil || (cut && s.cur != nil && s.cur.up.sim != nil && s.cur.up.sim == feed.sim && s.cur.up.layer > feed.layer) {
		// Nothing (or a hidden tile), or a step down on a link that overruns: the source
		// forwarded now stops at once; the next one starts at a keyframe.
		if s.cur != nil {
			drop = append(drop, s.cur)
			s.cur = nil
			s.rw.resume = true
		}
	}
	var f *DownTrack
	if feed != nil {
		// A new generation for the new feeder: the rewriter forwards the current
		// feeder's (rw.cur) and switches at the target's (s.gen); any other's packets
		// are dropped.
		s.gen++
		if s.gen == s.rw.cur {
			s.gen++
		}
		f = &DownTrack{id: s.id, streamID: s.streamID, up: feed, sub: s.sub, slot: s, slotGen: s.gen}
		// Its cap is the tile's: dynacast keeps the layers up to it sent, for the
		// allocator to raise the slot to (a feeder's own layer would pause the others).
		f.maxLayer.Store(tileCap)
		f.need.Store(needUnknown)
		f.want.Store(s.want.Load())
		s.next = f
		s.target.Store(int32(feed.layer))
	}
	s.mu.Unlock()
	for _, d := range drop {
		d.up.removeDown(d)
	}
	if f != nil {
		if err := feed.addDown(f); err != nil {
			s.feederEnded(f)
			return false
		}
	}
	return up != nil
}

// accepts reports whether the subscriber negotiated up's codec on the slot (true before
// negotiation: the slot's codecs are not known yet).
func (s *Slot) accepts(up *UpTrack) bool {
	b := s.binding.Load()
	if b == nil || up == nil {
		return true
	}
	_, ok := b.payloadType(up.codec)
	return ok
}

// write forwards one packet of feeder f. Called from f's up track's fan-out.
func (s *Slot) write(f *DownTrack, hdr *rtp.Header, payload []byte, keyframe bool) writeResult {
	b := s.binding.Load()
	if b == nil || !s.sub.subConnected.Load() {
		return writeUnbound
	}
	up := f.up
	if up.codecK == codecOther {
		keyframe = true // audio: any packet starts it
	}
	s.mu.Lock()
	seq, ts, res := s.rw.rewrite(f.slotGen, hdr.SequenceNumber, hdr.Timestamp, keyframe, s.gen, up.readAt, seedRandom)
	var left *DownTrack
	switch res {
	case rewriteDrop:
		s.mu.Unlock()
		return writeSkipped
	case rewriteWait:
		s.mu.Unlock()
		return writeWaitingKeyframe
	case rewriteSwitched:
		if f == s.next {
			left, s.cur, s.next = s.cur, f, nil
			s.switches.Add(1)
		}
	}
	if s.ptFor != f || s.ptOf != b {
		// The feeder's codec as the subscriber negotiated it, once per feeder and binding.
		s.pt, _ = b.payloadType(up.codec)
		s.ptFor, s.ptOf = f, b
	}
	sc := &s.scratch
	sc.Version, sc.Padding, sc.Marker = 2, false, hdr.Marker
	sc.PayloadType, sc.SequenceNumber, sc.Timestamp, sc.SSRC = s.pt, seq, ts, b.ssrc
	sc.CSRC = sc.CSRC[:0]
	sc.Extension, sc.Extensions = false, sc.Extensions[:0]
	if b.levelID != 0 && up.hasLevel {
		s.levelExt[0] = up.level
		_ = sc.SetExtension(b.levelID, s.levelExt[:]) // cannot fail: one byte, id ≤ 14
	}
	_, err := b.writer.WriteRTP(sc, payload)
	size := sc.MarshalSize() + len(payload)
	s.mu.Unlock()
	if left != nil {
		left.up.removeDown(left) // the source left: its reader reaches the slot no more
	}
	if err != nil {
		return writeFailed
	}
	s.packetsSent.Add(1)
	s.bytesSent.Add(uint64(size))
	return writeOK
}

// skipped closes the slot's numbering over n packets of feeder f's source that its
// reader did not forward (a Last-N pause or an overload skip ended at seq), as for a
// DownTrack (UpTrack.resume). Called from f's reader.
func (s *Slot) skipped(f *DownTrack, seq uint16, n uint16) {
	s.mu.Lock()
	s.rw.skipped(f.slotGen, seq, n)
	s.mu.Unlock()
}

// feederEnded is called when a feeder's up track ends (the publisher left): the slot
// forwards nothing until pointed again.
func (s *Slot) feederEnded(f *DownTrack) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch f {
	case s.cur:
		s.cur = nil
		s.rw.resume = true
	case s.next:
		s.next = nil
	default:
		return
	}
	if s.cur == nil && s.next == nil {
		s.src, s.source = nil, ""
	}
}

// detach takes the slot's feeders out of their tracks' fan-outs (the peer closes).
func (s *Slot) detach() {
	s.mu.Lock()
	cur, next := s.cur, s.next
	s.cur, s.next, s.src, s.source = nil, nil, nil, ""
	s.mu.Unlock()
	for _, d := range []*DownTrack{cur, next} {
		if d != nil {
			d.up.removeDown(d)
		}
	}
}

// readRTCP serves the subscriber's feedback for the slot: picture loss becomes a
// keyframe request to the source forwarded (and the one switched to); NACKs are answered
// from the forwarded source's packet cache.
func (s *Slot) readRTCP() {
	buf := make([]byte, rtcpReadSize)
	for {
		n, attrs, err := s.sender.Read(buf)
		if err != nil {
			return
		}
		pkts, err := attrs.GetRTCPPackets(buf[:n])
		if err != nil {
			continue
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				s.mu.Lock()
				cur, next := s.cur, s.next
				s.mu.Unlock()
				for _, d := range []*DownTrack{cur, next} {
					if d != nil {
						d.up.RequestKeyframe()
					}
				}
			case *rtcp.TransportLayerNack:
				s.answerNACK(p)
			}
		}
	}
}

// answerNACK resends, as the original packets, those of the source forwarded now that
// the subscriber lost and the cache still holds. RTCP reader goroutine only.
func (s *Slot) answerNACK(n *rtcp.TransportLayerNack) {
	b := s.binding.Load()
	if b == nil || n.MediaSSRC != b.ssrc {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock() // the resends are few; the fan-out waits for them
	if s.cur == nil || s.cur.up.cache == nil || !s.rw.started || s.rw.resume {
		return
	}
	cache := s.cur.up.cache
	for _, pair := range n.Nacks {
		pair.Range(func(seq uint16) bool {
			in := seq - s.rw.seqOffset
			if int16(in-s.rw.firstInSeq) < 0 {
				return true // from before this source's start in the slot
			}
			k, ts, marker, ok := cache.get(in, s.nackBuf[:])
			if !ok {
				return true
			}
			h := &s.nackHdr
			h.Version, h.Padding, h.Marker = 2, false, marker
			h.PayloadType, h.SequenceNumber, h.Timestamp, h.SSRC = s.pt, seq, ts+s.rw.tsOffset, b.ssrc
			h.CSRC, h.Extension, h.Extensions = h.CSRC[:0], false, h.Extensions[:0]
			_, _ = b.writer.WriteRTP(h, s.nackBuf[:k])
			return true
		})
	}
}
