package recorder

import (
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"

	"github.com/cau-project/cau/sfu"
)

// How long a frame may wait in samplebuilder for a missing packet before the recorder
// gives up on it. The bridge repairs a video hop with NACK within a round trip or a few;
// audio is not retransmitted, so its wait covers reordering only. The packet counts are
// upper bounds that the time limits reach first.
const (
	videoMaxDelay = 1500 * time.Millisecond
	audioMaxDelay = 200 * time.Millisecond
	videoMaxLate  = 2000
	audioMaxLate  = 100
)

// syncWait is how long a track waits for its first sender report before it is placed
// on arrival times instead (browsers and pion send the first within about a second).
const syncWait = 3 * time.Second

// maxUnsynced bounds the frames held while a track waits for its first sender report.
const maxUnsynced = 600

// frame is one media frame placed on its publisher's wall clock.
type frame struct {
	ns   int64 // sender wall time, Unix ns
	key  bool
	data []byte
}

// rawFrame is a frame not yet placed in time (no sender report yet).
type rawFrame struct {
	ext  int64 // extended RTP timestamp
	key  bool
	data []byte
}

// track is one tapped track of a source. Owned by the source goroutine.
type track struct {
	kind            string
	codec           codec
	tap             *sfu.Tap // nil in unit tests that feed packets directly
	requestKeyframe func()

	ssrc     uint32
	haveSSRC bool
	firstAt  time.Time // arrival of the first packet
	clock    senderClock
	pendSR   map[uint32]*rtcp.SenderReport // reports that came before the first RTP packet
	sb       *samplebuilder.SampleBuilder

	lastSeq   uint16 // last sequence number of the last frame taken from sb
	haveSeq   bool
	padding   [64]uint16 // recent padding-only packets: not losses when absent from frames
	padN      int
	waitKey   bool      // video: drop frames until a keyframe (start, loss, new part)
	lastPLI   time.Time // when the recorder last asked for a keyframe
	width     int
	height    int
	avcC      []byte // H.264 decoder configuration from the first keyframe
	unsynced  []rawFrame
	queue     []frame // placed frames waiting for the interleaver
	lastMs    int64   // last timestamp written to the current part
	wroteAny  bool
	ended     bool
	inPart    int // track number − 1 in the open part, or −1
	info      TrackInfo
	dropped0  uint64 // tap drops when the current part opened
	lastFrame time.Time
	voice     voice
	// onSpeech reports talk spurts of an audio track (local time); nil: not wanted.
	onSpeech func(talking bool, at time.Time)
}

func newTrack(kind string, c codec, tap *sfu.Tap, requestKeyframe func()) *track {
	t := &track{kind: kind, codec: c, tap: tap, requestKeyframe: requestKeyframe, inPart: -1,
		pendSR: map[uint32]*rtcp.SenderReport{}, waitKey: c.video}
	t.clock.rate = 48000
	if c.video {
		t.clock.rate = 90000
	}
	t.sb = t.newBuilder()
	t.info = TrackInfo{Kind: kind, Codec: c.mime}
	return t
}

func (t *track) newBuilder() *samplebuilder.SampleBuilder {
	late, delay := uint16(audioMaxLate), audioMaxDelay
	if t.codec.video {
		late, delay = videoMaxLate, videoMaxDelay
	}
	return samplebuilder.New(late, t.codec.depacketizer(), uint32(t.clock.rate),
		samplebuilder.WithRTPHeaders(true), samplebuilder.WithMaxTimeDelay(delay))
}

// askKeyframe asks the publisher for a keyframe, at most once a second from here (the
// bridge throttles further).
func (t *track) askKeyframe(now time.Time) {
	if !t.codec.video || t.requestKeyframe == nil || now.Sub(t.lastPLI) < time.Second {
		return
	}
	t.lastPLI = now
	t.info.KeyframeRequests++
	t.requestKeyframe()
}

// rtcp takes a compound RTCP packet from the publisher and applies its sender reports.
func (t *track) rtcp(data []byte, at time.Time) {
	pkts, err := rtcp.Unmarshal(data)
	if err != nil {
		return // a bad compound packet from the publisher: its next report will do
	}
	for _, p := range pkts {
		sr, ok := p.(*rtcp.SenderReport)
		if !ok {
			continue
		}
		if !t.haveSSRC {
			t.pendSR[sr.SSRC] = sr
			continue
		}
		if sr.SSRC == t.ssrc {
			t.clock.senderReport(sr.NTPTime, sr.RTPTime, at)
		}
	}
}

// rtp takes one RTP packet (its own copy of the bytes) and returns how many frames it
// completed; they go to t.unsynced or t.queue.
func (t *track) rtp(data []byte, at time.Time) {
	p := &rtp.Packet{}
	if err := p.Unmarshal(data); err != nil {
		return
	}
	if !t.haveSSRC || p.SSRC != t.ssrc {
		if t.haveSSRC {
			t.restart() // the publisher restarted its encoder: a new stream
		}
		t.ssrc, t.haveSSRC, t.firstAt = p.SSRC, true, at
		if sr := t.pendSR[p.SSRC]; sr != nil {
			t.clock.ts.extend(p.Timestamp)
			t.clock.senderReport(sr.NTPTime, sr.RTPTime, at)
		}
		clear(t.pendSR)
	}
	t.clock.ts.extend(p.Timestamp)
	if !t.clock.synced && at.Sub(t.firstAt) >= syncWait {
		t.clock.anchorOnArrival(p.Timestamp, at)
	}
	if len(p.Payload) == 0 {
		// Padding only (bandwidth probing). It takes a sequence number, so remember it
		// as no loss. samplebuilder would glue it to the next frame (same timestamp as
		// the last, no marker) and drop both as a frame without a start: mark it as a
		// frame of its own, which samplebuilder drops alone. Audio needs none of this.
		if !t.codec.video {
			return
		}
		t.padding[t.padN%len(t.padding)] = p.SequenceNumber
		t.padN++
		p.Marker = true
	}
	t.sb.Push(p)
	for s := t.sb.Pop(); s != nil; s = t.sb.Pop() {
		t.sample(s.Data, s.PacketTimestamp, s.RTPHeaders, at)
	}
	t.placeUnsynced()
}

// placeUnsynced places the frames held for the first sender report, once it came, ahead
// of any later frame.
func (t *track) placeUnsynced() {
	if !t.clock.synced || len(t.unsynced) == 0 {
		return
	}
	for _, r := range t.unsynced {
		t.place(r.ext, r.key, r.data)
	}
	t.unsynced = t.unsynced[:0]
}

// restart forgets the old stream's state for a new SSRC.
func (t *track) restart() {
	t.clock = senderClock{rate: t.clock.rate}
	t.sb = t.newBuilder()
	t.haveSeq = false
	t.unsynced = t.unsynced[:0]
	t.waitKey = t.codec.video
}

// isPadding reports whether seq was a padding-only packet seen recently.
func (t *track) isPadding(seq uint16) bool {
	for _, s := range t.padding[:min(t.padN, len(t.padding))] {
		if s == seq {
			return true
		}
	}
	return false
}

// sample handles one frame out of the samplebuilder.
func (t *track) sample(data []byte, ts uint32, hdrs []*rtp.Header, at time.Time) {
	if len(hdrs) == 0 || len(data) == 0 {
		return
	}
	first, last := hdrs[0].SequenceNumber, hdrs[len(hdrs)-1].SequenceNumber
	gap := false
	if t.haveSeq {
		for s := t.lastSeq + 1; s != first; s++ {
			if !t.isPadding(s) {
				gap = true
				break
			}
		}
	}
	t.lastSeq, t.haveSeq = last, true
	t.lastFrame = at
	if !t.codec.video {
		t.accept(ts, true, data)
		return
	}
	key := t.codec.keyframe(data)
	if gap {
		t.info.Gaps++
		if !key {
			// A frame is missing: what follows would decode with errors until the next
			// keyframe. Wait for it, and ask for it now.
			t.waitKey = true
			t.askKeyframe(at)
		}
	}
	if t.waitKey && !key {
		t.info.FramesSkipped++
		t.askKeyframe(at)
		return
	}
	if key {
		t.waitKey = false
		t.keyframeFacts(data)
	}
	t.accept(ts, key, data)
}

// keyframeFacts notes the size (VP8) and the decoder configuration (H.264) of a keyframe.
func (t *track) keyframeFacts(data []byte) {
	switch t.codec {
	case codecVP8:
		if w, h, ok := vp8Size(data); ok {
			if t.width != 0 && (w != t.width || h != t.height) {
				t.info.ResolutionChanges++
			}
			t.width, t.height = w, h
			t.info.Width, t.info.Height = w, h
		}
	case codecH264:
		if t.avcC == nil {
			t.avcC = avcConfig(data)
		}
	}
}

// accept places a complete, decodable frame in time, or holds it until the track is
// synced.
func (t *track) accept(ts uint32, key bool, data []byte) {
	ext := t.clock.ts.peek(ts)
	if !t.clock.synced {
		if len(t.unsynced) >= maxUnsynced {
			t.unsynced = t.unsynced[1:]
		}
		t.unsynced = append(t.unsynced, rawFrame{ext: ext, key: key, data: data})
		return
	}
	t.placeUnsynced()
	t.place(ext, key, data)
}

func (t *track) place(ext int64, key bool, data []byte) {
	ns := t.clock.place(ext)
	t.queue = append(t.queue, frame{ns: ns, key: key, data: data})
	if t.codec.video || t.onSpeech == nil {
		return
	}
	const frameNs = int64(20 * time.Millisecond)
	switch t.voice.frame(len(data)) {
	case 1:
		t.onSpeech(true, time.Unix(0, ns-(voiceStart-1)*frameNs+t.clock.offsetNs))
	case -1:
		t.onSpeech(false, time.Unix(0, ns-(voiceEnd-1)*frameNs+t.clock.offsetNs))
	}
}

// ready reports whether the track can go into a new file: placed in time and, for
// video, with a keyframe to start from (audio may have nothing queued this instant).
func (t *track) ready() bool {
	if t.ended || !t.clock.synced {
		return false
	}
	return !t.codec.video || len(t.queue) > 0 && t.queue[0].key
}

// spec describes the track for a file header.
func (t *track) spec() trackSpec {
	s := trackSpec{kind: t.kind, codec: t.codec, width: t.width, height: t.height}
	switch t.codec {
	case codecOpus:
		s.codecPrivate = opusHead()
	case codecH264:
		s.codecPrivate = t.avcC
		if s.width == 0 {
			s.width, s.height = 640, 480 // a placeholder: decoders read the size from the SPS
		}
	}
	return s
}

// syncMode names how the track is placed in time, for the manifest.
func (t *track) syncMode() string {
	if t.clock.fallback {
		return "arrival"
	}
	return "sr"
}
