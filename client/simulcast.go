package client

import (
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// synthLayer is one simulcast layer of a Synth's video: its own track (RID), sequence
// numbers, timeline and keyframe requests, as a browser's encoder per layer.
type synthLayer struct {
	rid   string
	track *webrtc.TrackLocalStaticRTP
	// share is the layer's packets per frame as a fraction of PacketsPerFrame.
	share          int // divisor: 4 (q), 2 (h), 1 (f)
	keyframeWanted atomic.Bool
	paused         atomic.Bool // the server said nobody needs the layer (publish_layers)
	seq            uint16      // Run's goroutine only
	ts             uint32
}

// simulcastLayers are the layers a simulcast Synth sends, low to high: quarter, half and
// full rate, as the join page's 180p/360p/720p.
var simulcastLayers = []struct {
	rid   string
	share int
}{{"q", 4}, {"h", 2}, {"f", 1}}

// NewSimulcastSynth is NewSynth whose video is sent as three layers (RIDs q, h and f) of
// one track: the low layer a quarter of PacketsPerFrame, the middle half, the top all of
// it. Video is the low layer's track (the transceiver's first encoding).
func NewSimulcastSynth(streamID string) (*Synth, error) {
	return newSimulcastSynth(streamID, false)
}

// NewSimulcastH264Synth is NewSimulcastSynth in H.264 (packetization mode 1, Constrained
// Baseline), as a browser publishes for a meeting with a room codec: each layer's frames
// are single NAL units, an IDR slice starting a keyframe and non-IDR slices otherwise.
func NewSimulcastH264Synth(streamID string) (*Synth, error) {
	return newSimulcastSynth(streamID, true)
}

func newSimulcastSynth(streamID string, h264 bool) (*Synth, error) {
	s, err := NewSynth(streamID)
	if err != nil {
		return nil, err
	}
	codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	if h264 {
		s.h264 = true
		codec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}
	}
	for _, l := range simulcastLayers {
		tr, err := webrtc.NewTrackLocalStaticRTP(codec, "cam-"+streamID, streamID, webrtc.WithRTPStreamID(l.rid))
		if err != nil {
			return nil, err
		}
		s.layers = append(s.layers, &synthLayer{rid: l.rid, track: tr, share: l.share})
	}
	s.Video = s.layers[0].track
	return s, nil
}

// isLayer says whether tr is one of the Synth's simulcast layers.
func (s *Synth) isLayer(tr webrtc.TrackLocal) bool {
	for _, l := range s.layers {
		if tr == webrtc.TrackLocal(l.track) {
			return true
		}
	}
	return false
}

// negotiatedLayers learns the MID and the RID extension of the video's transceiver (a
// pion sender does not mark simulcast packets itself; the bridge needs both to tell the
// layers apart) and starts reading each layer's keyframe requests.
func (s *Synth) negotiatedLayers(tc *webrtc.RTPTransceiver) {
	for _, x := range tc.Sender().GetParameters().HeaderExtensions {
		switch x.URI {
		case sdp.SDESMidURI:
			s.midID.Store(uint32(x.ID))
		case sdp.SDESRTPStreamIDURI:
			s.ridID.Store(uint32(x.ID))
		}
	}
	mid := tc.Mid()
	s.mid.Store(&mid)
	for _, l := range s.layers {
		go ReadSimulcastKeyframeRequests(tc.Sender(), l.rid, func() { l.keyframeWanted.Store(true) })
	}
}

// sendLayers writes one video frame on every layer; key forces keyframes on all. Run's
// goroutine only.
func (s *Synth) sendLayers(payload []byte, size int, key bool, tsStep, frame uint32) {
	midID, ridID, mid := uint8(s.midID.Load()), uint8(s.ridID.Load()), s.mid.Load()
	if midID == 0 || ridID == 0 || mid == nil {
		return // not negotiated yet
	}
	for li, l := range s.layers {
		l.ts += tsStep // the layer's clock runs on while it is paused, as a browser's
		if l.paused.Load() {
			continue
		}
		k := key || l.keyframeWanted.Swap(false)
		if k && !key { // Run counted the keyframe it asked for
			s.keyframesSent.Add(1)
		}
		n := max(s.PacketsPerFrame/l.share, 1)
		for i := 0; i < n; i++ {
			p := s.framePacket(payload[:size], i == 0, k)
			Probe{SentAt: time.Now().UnixNano(), Frame: frame, Index: uint8(i), Count: uint8(n)}.Put(p[VideoProbeOffset:])
			p[VideoLayerOffset] = byte(li + 1)
			l.seq++
			h := rtp.Header{Version: 2, SequenceNumber: l.seq, Timestamp: l.ts, Marker: i == n-1}
			_ = h.SetExtension(midID, []byte(*mid))
			_ = h.SetExtension(ridID, []byte(l.rid))
			_ = l.track.WriteRTP(&rtp.Packet{Header: h, Payload: p})
			s.sent.videoPackets.Add(1)
		}
	}
}

// framePacket marks p as the Synth's codec's packet (vp8Packet, h264Packet).
func (s *Synth) framePacket(p []byte, first, key bool) []byte {
	if s.h264 {
		return h264Packet(p, first, key)
	}
	return vp8Packet(p, first, key)
}

// h264Packet makes p one H.264 NAL unit (RFC 6184 single NAL unit packet): an IDR slice
// for a keyframe's first packet, a non-IDR slice otherwise (nal_ref_idc 3, 2).
func h264Packet(p []byte, first, key bool) []byte {
	p[0] = 0x41 // non-IDR slice
	if first && key {
		p[0] = 0x65 // IDR slice
	}
	return p
}

// vp8Packet marks p as a VP8 packet: the payload descriptor (S=1 on a frame's first
// packet) and the frame tag's P bit (0 on a keyframe).
func vp8Packet(p []byte, first, key bool) []byte {
	p[0] = 0x00
	if first {
		p[0] = 0x10 // S=1, partition 0
	}
	p[1] = 0x01
	if key {
		p[1] = 0x00 // P=0: keyframe
	}
	return p
}

// countLayer counts a received video packet of a simulcast Synth under its layer.
func (s *Stream) countLayer(payload []byte) {
	if s.Kind != "video" || len(payload) <= VideoLayerOffset {
		return
	}
	if _, ok := probeAt("video", payload); !ok {
		return // not from a Synth (a browser's camera)
	}
	if l := payload[VideoLayerOffset]; l >= 1 && int(l) <= len(s.layers) {
		s.layers[l-1].Add(1)
	}
}

// LayerPackets counts the video packets received at each simulcast layer (low, middle,
// top) of a simulcast Synth; all zero for a stream without layers.
func (s *Stream) LayerPackets() [3]int64 {
	return [3]int64{s.layers[0].Load(), s.layers[1].Load(), s.layers[2].Load()}
}
