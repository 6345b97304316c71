package sfu

import (
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// keyframeInterval throttles PLIs to one publisher: a burst of joins or of subscriber PLIs
// costs it one keyframe, not one each.
const keyframeInterval = 500 * time.Millisecond

// UpTrack is one track a peer publishes to the bridge. One goroutine (the reader) reads
// its RTP and fans it out to the subscribed DownTracks.
type UpTrack struct {
	id       string // the publisher's track id (msid)
	streamID string
	kind     webrtc.RTPCodecType
	codec    webrtc.RTPCodecParameters
	codecK   codecKind
	ssrc     uint32
	remote   *webrtc.TrackRemote
	receiver *webrtc.RTPReceiver
	owner    *Peer
	// pc is the owner's publisher connection, which carries the track (its PLIs go there).
	pc  *webrtc.PeerConnection
	log *slog.Logger
	// sim groups the layers of a simulcast source (simulcast.go), nil for a track that is
	// not simulcast; layer is this track's index there and rid its RID. Set under the
	// owner's lock before the reader starts, read-only after.
	sim   *simulcast
	layer int8
	rid   string

	mu    sync.Mutex                   // serialises changes to downs (writers only)
	downs atomic.Pointer[[]*DownTrack] // copy-on-write snapshot read by the reader without a lock
	taps  atomic.Pointer[[]*Tap]       // local subscribers (recorder); copy-on-write like downs
	// gate is the track's Last-N selection (lastn.go), nil when it is in no Selector.
	gate atomic.Pointer[gate]
	// levelID is the publisher's RFC 6464 audio-level extension id, 0 if not negotiated.
	levelID uint8
	// level is the current packet's audio level, for the fan-out to pass on (a relay
	// link's far end selects on it too); hasLevel says whether the packet had one.
	// Written by the reader before each fan-out, read by its writers (fanPool orders it).
	level    uint8
	hasLevel bool
	// paused is set while the gate is shut: the packets dropped are counted as not
	// selected, not as overload. Reader goroutine only.
	paused bool
	// readAt is when the current packet was read, for a simulcast subscriber's switch
	// (the timeline continues by the real time that passed). Written by the reader before
	// each fan-out, read by its writers, like level.
	readAt time.Time
	// relayRates is what the sending bridge says about the source's layers when this
	// track arrives over a relay link (need.go); needOff is set while this bridge has told
	// it that nobody here needs the track (the reporter's goroutine writes it, the
	// selector reads it: a video held back on request has not "stopped arriving").
	relayRates remoteLayers
	needOff    atomic.Bool
	// dynPaused is set while dynacast has told the publisher not to send this layer
	// (dynacast.go); lastRate is the layer's rate (bit/s) when last measured sending, so
	// that a bridge beyond a relay link still learns what the layer would cost
	// (allocator.measure). Written by the dynacast goroutine and the allocators.
	dynPaused atomic.Bool
	lastRate  atomic.Uint64

	fan   *fanPool     // fan-out workers, owned by the reader goroutine; nil until needed
	cache *packetCache // video: the latest packets, for every subscriber's NACKs; nil for audio
	rx    rxStats
	// Overload (backpressure.go), reader goroutine only.
	lag              lagMeter
	lateSince        time.Time // when the lag last went over maxLag; zero while on time
	lastWait         time.Time // when a read last had to wait for its packet
	haveTS           bool
	lastTS           uint32
	skipping         bool   // dropping video until the next keyframe
	skipped          uint16 // packets dropped in the current skip
	skips            atomic.Uint64
	lastKeyframeReq  atomic.Int64 // unix nanos of the last PLI sent
	keyframeDeferred atomic.Bool  // a PLI is scheduled for the end of the interval
	packets          atomic.Uint64
	bytes            atomic.Uint64
	done             chan struct{}
	closeOnce        sync.Once

	// prometheus handles, resolved once so the hot path never hashes label values
	mPackets, mBytes, mOutPackets, mOutBytes, mDropKF, mDropWrite prometheus.Counter
	mDropLate, mDropPaused                                        prometheus.Counter
	mKeyframeReqs, mRetransmits, mRetransmitMissed                prometheus.Counter
}

// ID is the publisher's track id.
func (t *UpTrack) ID() string { return t.id }

// StreamID is the publisher's stream id.
func (t *UpTrack) StreamID() string { return t.streamID }

// Kind is audio or video.
func (t *UpTrack) Kind() webrtc.RTPCodecType { return t.kind }

// Codec is the negotiated codec of the published track.
func (t *UpTrack) Codec() webrtc.RTPCodecParameters { return t.codec }

// Publisher is the peer that publishes this track.
func (t *UpTrack) Publisher() *Peer { return t.owner }

// Done is closed when the track ends (the publisher stopped it or left).
func (t *UpTrack) Done() <-chan struct{} { return t.done }

// PacketsReceived counts RTP packets read from the publisher.
func (t *UpTrack) PacketsReceived() uint64 { return t.packets.Load() }

func newUpTrack(owner *Peer, pc *webrtc.PeerConnection, remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) *UpTrack {
	t := &UpTrack{
		id:       remote.ID(),
		streamID: remote.StreamID(),
		kind:     remote.Kind(),
		codec:    remote.Codec(),
		codecK:   codecKindOf(remote.Codec().MimeType),
		ssrc:     uint32(remote.SSRC()),
		remote:   remote,
		receiver: receiver,
		owner:    owner,
		pc:       pc,
		done:     make(chan struct{}),
	}
	t.log = owner.log.With("track", t.id, "kind", t.kind.String(), "codec", t.codec.MimeType)
	if t.kind == webrtc.RTPCodecTypeAudio && receiver != nil {
		for _, e := range receiver.GetParameters().HeaderExtensions {
			if e.URI == sdp.AudioLevelURI {
				t.levelID = uint8(e.ID)
			}
		}
	}
	t.rx.clockPerSec = int64(t.codec.ClockRate)
	t.lag.clockPerSec = int64(t.codec.ClockRate)
	if t.kind == webrtc.RTPCodecTypeVideo { // only video negotiates NACK
		t.cache = newPacketCache(packetCacheSize)
	}
	empty := []*DownTrack{}
	t.downs.Store(&empty)
	t.taps.Store(&[]*Tap{})
	if m := owner.bridge.metrics; m != nil {
		k := t.kind.String()
		t.mPackets, t.mBytes = m.PacketsIn.WithLabelValues(k), m.BytesIn.WithLabelValues(k)
		t.mOutPackets, t.mOutBytes = m.PacketsOut.WithLabelValues(k), m.BytesOut.WithLabelValues(k)
		t.mDropKF = m.PacketsDropped.WithLabelValues("keyframe_wait")
		t.mDropWrite = m.PacketsDropped.WithLabelValues("write_error")
		t.mDropLate = m.PacketsDropped.WithLabelValues("overload")
		t.mDropPaused = m.PacketsDropped.WithLabelValues("not_selected")
		t.mKeyframeReqs = m.KeyframeReqs
		if m.Retransmissions != nil {
			t.mRetransmits = m.Retransmissions.WithLabelValues("sent")
			t.mRetransmitMissed = m.Retransmissions.WithLabelValues("missed")
		}
		m.UpTracks.Inc()
	}
	return t
}

// addDown subscribes d to this track. A video subscriber waits for a keyframe, so one is
// requested at once.
func (t *UpTrack) addDown(d *DownTrack) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-t.done:
		return ErrClosed
	default:
	}
	next := withAdded(*t.downs.Load(), d)
	t.downs.Store(&next)
	if t.kind == webrtc.RTPCodecTypeVideo {
		t.RequestKeyframe()
	}
	return nil
}

// removeDown unsubscribes d; it is a no-op if d is not subscribed.
func (t *UpTrack) removeDown(d *DownTrack) {
	t.mu.Lock()
	defer t.mu.Unlock()
	next := without(*t.downs.Load(), d)
	t.downs.Store(&next)
}

// Subscribers is the number of DownTracks fed by this track.
func (t *UpTrack) Subscribers() int { return len(*t.downs.Load()) }

// RequestKeyframe asks the publisher for a keyframe (PLI), at most once per
// keyframeInterval. A request inside the interval is not dropped but deferred to its end
// (coalesced with any others): the keyframe sent for an earlier request may have gone
// out before this subscriber lost its packet. Safe from any goroutine.
func (t *UpTrack) RequestKeyframe() {
	if t.kind != webrtc.RTPCodecTypeVideo {
		return
	}
	now := time.Now().UnixNano()
	last := t.lastKeyframeReq.Load()
	if wait := int64(keyframeInterval) - (now - last); wait > 0 {
		if t.keyframeDeferred.CompareAndSwap(false, true) {
			time.AfterFunc(time.Duration(wait), func() {
				t.keyframeDeferred.Store(false)
				select {
				case <-t.done:
				default:
					t.RequestKeyframe()
				}
			})
		}
		return
	}
	if !t.lastKeyframeReq.CompareAndSwap(last, now) {
		return // another goroutine sent one just now
	}
	if t.mKeyframeReqs != nil {
		t.mKeyframeReqs.Inc()
	}
	if err := t.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: t.ssrc}}); err != nil &&
		!errors.Is(err, io.ErrClosedPipe) {
		t.log.Debug("send PLI", "err", err)
	}
}

// readLoop is the track's reader goroutine: it owns buf and hdr and is the only writer of
// every DownTrack's forwarding state. It allocates nothing per packet.
func (t *UpTrack) readLoop() {
	defer t.close()
	go t.drainRTCP()
	buf := make([]byte, 1500)
	var hdr rtp.Header
	var pending pendingCounts
	defer pending.flush(t)
	defer func() { t.fan.stop() }()
	for {
		before := time.Now()
		n, _, err := t.remote.Read(buf)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.log.Debug("track read ended", "err", err)
			}
			return
		}
		now := time.Now()
		if now.Sub(before) > readWaited {
			t.lastWait = now // the reader was waiting for this packet: no backlog here
		}
		t.forwardAt(buf[:n], &hdr, &pending, now)
	}
}

// pendingCounts batches metric updates so the hot path touches shared counters once
// every flushEvery packets instead of on each one.
type pendingCounts struct {
	packets, bytes, outPackets, outBytes, dropKF, dropWrite, dropLate, dropPaused uint64
}

const flushEvery = 64

// add merges a fan-out worker's counts.
func (p *pendingCounts) add(q *pendingCounts) {
	p.outPackets += q.outPackets
	p.outBytes += q.outBytes
	p.dropKF += q.dropKF
	p.dropWrite += q.dropWrite
}

func (p *pendingCounts) flush(t *UpTrack) {
	if t.mPackets != nil {
		t.mPackets.Add(float64(p.packets))
		t.mBytes.Add(float64(p.bytes))
		t.mOutPackets.Add(float64(p.outPackets))
		t.mOutBytes.Add(float64(p.outBytes))
		t.mDropKF.Add(float64(p.dropKF))
		t.mDropWrite.Add(float64(p.dropWrite))
		t.mDropLate.Add(float64(p.dropLate))
		t.mDropPaused.Add(float64(p.dropPaused))
	}
	*p = pendingCounts{}
}

// forward parses one packet and writes it to every subscriber.
func (t *UpTrack) forward(pkt []byte, hdr *rtp.Header, pending *pendingCounts) {
	t.forwardAt(pkt, hdr, pending, time.Now())
}

// forwardAt is forward with the packet read at now (tests set the clock).
func (t *UpTrack) forwardAt(pkt []byte, hdr *rtp.Header, pending *pendingCounts, now time.Time) {
	hn, err := hdr.Unmarshal(pkt)
	if err != nil {
		return // the SRTP layer authenticated it, so this is a publisher bug; nothing to forward
	}
	end := len(pkt)
	if hdr.Padding && end > hn {
		pad := int(pkt[end-1])
		if pad > end-hn {
			return
		}
		end -= pad
	}
	payload := pkt[hn:end]
	t.rx.observe(hdr.SequenceNumber, hdr.Timestamp, now)
	t.deliverTaps(pkt, now, false)
	t.packets.Add(1)
	t.bytes.Add(uint64(len(payload)))
	pending.packets++
	pending.bytes += uint64(len(payload))

	t.hasLevel = false
	if t.levelID != 0 {
		if ext := hdr.GetExtension(t.levelID); len(ext) > 0 {
			t.level, t.hasLevel = ext[0]&0x7f, true
		}
	}
	g := t.gateNow()
	if g != nil && t.hasLevel {
		g.observe(t.level)
	}

	keyframe := t.codecK != codecOther && isKeyframeStart(t.codecK, payload)
	downs := *t.downs.Load()
	if !t.admit(hdr.SequenceNumber, hdr.Timestamp, keyframe, now, downs, g) {
		if t.paused {
			pending.dropPaused += uint64(len(downs))
		} else {
			pending.dropLate += uint64(len(downs))
		}
		return
	}
	if t.cache != nil {
		t.cache.store(hdr.SequenceNumber, hdr.Timestamp, hdr.Marker, payload)
	}
	t.readAt = now
	// Every subscriber's datagram is queued and leaves in a few sendmmsg calls, on the
	// egress flushers' goroutines, instead of one sendto each here.
	egress := t.owner.bridge.egress
	egress.Hold()
	if len(downs) >= parallelMin {
		if t.fan == nil {
			t.fan = newFanPool()
		}
		t.fan.fanOut(t, downs, hdr, payload, keyframe, pending)
	} else {
		t.writeAll(downs, hdr, payload, keyframe, pending)
	}
	egress.Release()
	if pending.packets >= flushEvery {
		pending.flush(t)
	}
}

// writeAll writes one packet to each of downs, counting into pending. It runs on the
// reader goroutine or, for a share of a large fan-out, on one of its workers.
func (t *UpTrack) writeAll(downs []*DownTrack, hdr *rtp.Header, payload []byte, keyframe bool, pending *pendingCounts) {
	for _, d := range downs {
		var res writeResult
		if d.slot != nil {
			res = d.slot.write(d, hdr, payload, keyframe)
		} else if d.sim != nil {
			res = d.writeLayer(t, hdr, payload, keyframe)
		} else {
			res = d.writeRTP(hdr, payload, keyframe)
		}
		switch res {
		case writeOK:
			pending.outPackets++
			pending.outBytes += uint64(len(payload))
		case writeWaitingKeyframe:
			pending.dropKF++
			// A lost PLI must not leave a subscriber black: ask again (throttled).
			t.RequestKeyframe()
		case writeFailed:
			pending.dropWrite++
		}
	}
}

// drainRTCP reads the publisher's RTCP for this track (sender reports) so the
// interceptors see it; taps (the recorder) get a copy to align tracks on the reports.
func (t *UpTrack) drainRTCP() {
	buf := make([]byte, 1500)
	for {
		var n int
		var err error
		if t.rid != "" {
			n, _, err = t.receiver.ReadSimulcast(buf, t.rid) // each layer has its own reports
		} else {
			n, _, err = t.receiver.Read(buf)
		}
		if err != nil {
			return
		}
		now := time.Now()
		if t.owner.params.Relay {
			t.noteRTCP(buf[:n], now)
		}
		t.deliverTaps(buf[:n], now, true)
	}
}

// close ends the track: subscribers are told, so their peers drop the DownTracks.
func (t *UpTrack) close() {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		close(t.done)
		downs := *t.downs.Load()
		empty := []*DownTrack{}
		t.downs.Store(&empty)
		t.mu.Unlock()
		t.leaveSimulcast()
		if t.sim != nil && t.sim.primary != t {
			// One layer of a source ended (the publisher dropped it): its subscribers stay
			// subscribed to the source; their allocators move them to a layer present.
			if m := t.owner.bridge.metrics; m != nil {
				m.UpTracks.Dec()
			}
			t.owner.trackEnded(t)
			return
		}
		for _, d := range downs {
			d.upClosed()
		}
		if m := t.owner.bridge.metrics; m != nil {
			m.UpTracks.Dec()
		}
		t.owner.trackEnded(t)
	})
}
