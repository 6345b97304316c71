package client

import (
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Synth generates media that a bridge can forward and a subscriber can check: Opus-sized
// audio packets every 20 ms and VP8-framed video whose first packet of each frame carries
// a valid payload descriptor, a keyframe at the start and whenever one is requested.
// Payloads are not decodable pictures; the bridge never decodes.
type Synth struct {
	Audio, Video *webrtc.TrackLocalStaticRTP
	// FPS and PacketsPerFrame shape the video; defaults 15 and 3 (~400 kbps).
	FPS, PacketsPerFrame int
	// PayloadBytes is the size of each video packet's payload; 0 means 1000, and values
	// are kept between 64 and 1200.
	PayloadBytes int
	// NoAudio and NoVideo silence a track: its transceiver is negotiated but no packet
	// is sent, so the bridge never sees the track (an audio-only or video-only endpoint).
	NoAudio, NoVideo bool
	// AudioEvery is the audio packet interval (Opus frames of 20 to 120 ms); 0 means
	// 20 ms. Simulations of hundreds of endpoints use 100 ms to spare the CPU.
	AudioEvery time.Duration

	// Levels makes the audio carry the microphone's level (RFC 6464), set by SetLoudness;
	// set it before Run. Without it the bridge cannot tell when this endpoint speaks and
	// always forwards its audio.
	Levels bool

	loudness       atomic.Uint32 // 0 (silence) .. 127 (0 dBov)
	levelID        atomic.Uint32 // the negotiated extension id; 0 until negotiated
	keyframeWanted atomic.Bool
	keyframesSent  atomic.Int64
	sent           synthCounters

	// layers are the simulcast layers (NewSimulcastSynth), nil for one video stream;
	// midID, ridID and mid what negotiation gave them, 0 and nil until then.
	layers       []*synthLayer
	h264         bool // the layers are H.264 (NewSimulcastH264Synth), else VP8
	midID, ridID atomic.Uint32
	mid          atomic.Pointer[string]
}

// NewSynth creates the two tracks, in one stream, as a browser's camera and microphone.
func NewSynth(streamID string) (*Synth, error) {
	a, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic-"+streamID, streamID)
	if err != nil {
		return nil, err
	}
	v, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "cam-"+streamID, streamID)
	if err != nil {
		return nil, err
	}
	return &Synth{Audio: a, Video: v, FPS: 15, PacketsPerFrame: 3}, nil
}

// SetLoudness sets what the microphone hears, from 0 (silence) to 127 (0 dBov); speech
// is about 70..100. It is sent as the level 127 − loudness when Levels is set.
func (s *Synth) SetLoudness(l int) { s.loudness.Store(uint32(min(max(l, 0), 127))) }

// RequestKeyframe makes the next video frame a keyframe (what an encoder does on PLI).
func (s *Synth) RequestKeyframe() { s.keyframeWanted.Store(true) }

// KeyframesSent counts keyframes generated.
func (s *Synth) KeyframesSent() int64 { return s.keyframesSent.Load() }

// Run sends media until stop is closed.
func (s *Synth) Run(stop <-chan struct{}) {
	every := min(max(s.AudioEvery, 20*time.Millisecond), 120*time.Millisecond)
	audioTick := time.NewTicker(every)
	defer audioTick.Stop()
	videoTick := time.NewTicker(time.Second / time.Duration(s.FPS))
	defer videoTick.Stop()
	var seqA, seqV uint16
	var tsA, tsV uint32
	var audioN, frameN uint32
	size := min(max(s.PayloadBytes, 64), 1200)
	if s.PayloadBytes == 0 {
		size = 1000
	}
	payload := make([]byte, size)
	var level [1]byte
	first := true
	for {
		select {
		case <-stop:
			return
		case <-audioTick.C:
			if s.NoAudio {
				continue
			}
			seqA++
			tsA += uint32(every / (time.Second / 48000))
			p := payload[:80]
			p[0] = 0x78 // an Opus TOC byte: SILK+CELT hybrid, 20 ms, mono
			Probe{SentAt: time.Now().UnixNano(), Frame: audioN, Count: 1}.Put(p[AudioProbeOffset:])
			audioN++
			h := rtp.Header{Version: 2, SequenceNumber: seqA, Timestamp: tsA}
			if id := s.levelID.Load(); s.Levels && id != 0 {
				level[0] = byte(127 - s.loudness.Load())
				_ = h.SetExtension(uint8(id), level[:])
			}
			_ = s.Audio.WriteRTP(&rtp.Packet{Header: h, Payload: p})
			s.sent.audioPackets.Add(1)
		case <-videoTick.C:
			if s.NoVideo {
				continue
			}
			key := first || s.keyframeWanted.Swap(false)
			first = false
			if key {
				s.keyframesSent.Add(1)
			}
			tsV += uint32(90000 / s.FPS)
			if len(s.layers) > 0 {
				s.sendLayers(payload, size, key, uint32(90000/s.FPS), frameN)
				frameN++
				s.sent.videoFrames.Add(1)
				continue
			}
			for i := 0; i < s.PacketsPerFrame; i++ {
				p := vp8Packet(payload[:size], i == 0, key)
				Probe{SentAt: time.Now().UnixNano(), Frame: frameN, Index: uint8(i), Count: uint8(s.PacketsPerFrame)}.
					Put(p[VideoProbeOffset:])
				seqV++
				_ = s.Video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seqV, Timestamp: tsV,
					Marker: i == s.PacketsPerFrame-1}, Payload: p})
			}
			frameN++
			s.sent.videoPackets.Add(int64(s.PacketsPerFrame))
			s.sent.videoFrames.Add(1)
		}
	}
}
