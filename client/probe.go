package client

import (
	"encoding/binary"
	"time"
)

// Probe is the measurement header the synthetic source writes inside each media payload,
// so a receiver can tell when the packet was sent and which frame it belongs to. The bridge
// strips RTP header extensions but forwards payloads untouched, so the probe survives it.
// Send and receive times come from the same clock only when sender and receiver share a
// host (the load tester runs every endpoint in one process).
type Probe struct {
	// SentAt is the sender's wall clock when the packet was written, in Unix nanoseconds.
	SentAt int64
	// Frame numbers the video frame (or the audio packet) from 0 on each publication.
	Frame uint32
	// Index is the packet's position in its frame, Count the packets in the frame.
	Index, Count uint8
}

// ProbeSize is the encoded length of a Probe.
const ProbeSize = 18

// Where the synthetic source puts the probe: after the VP8 payload descriptor and a
// 10-byte VP8 frame header (so keyframe detection in the bridge reads real-looking bytes),
// and after the Opus TOC byte.
const (
	VideoProbeOffset = 11
	AudioProbeOffset = 1
	// VideoLayerOffset is where a simulcast Synth writes the layer of a video packet
	// (1 low, 2 middle, 3 top; 0 from a Synth without layers), right after the probe:
	// the bridge forwards payloads untouched, so a subscriber sees which layer reaches it.
	VideoLayerOffset = VideoProbeOffset + ProbeSize
)

var probeMagic = [4]byte{'C', 'A', 'U', 'p'}

// Put writes the probe at the start of b and reports whether b was long enough.
func (p Probe) Put(b []byte) bool {
	if len(b) < ProbeSize {
		return false
	}
	copy(b, probeMagic[:])
	binary.BigEndian.PutUint64(b[4:], uint64(p.SentAt))
	binary.BigEndian.PutUint32(b[12:], p.Frame)
	b[16], b[17] = p.Index, p.Count
	return true
}

// ParseProbe reads a probe from the start of b.
func ParseProbe(b []byte) (Probe, bool) {
	if len(b) < ProbeSize || [4]byte(b[:4]) != probeMagic {
		return Probe{}, false
	}
	return Probe{
		SentAt: int64(binary.BigEndian.Uint64(b[4:])),
		Frame:  binary.BigEndian.Uint32(b[12:]),
		Index:  b[16],
		Count:  b[17],
	}, true
}

// probeAt finds the probe in a received payload of the given kind ("audio" or "video").
func probeAt(kind string, payload []byte) (Probe, bool) {
	off := AudioProbeOffset
	if kind == "video" {
		off = VideoProbeOffset
	}
	if len(payload) < off {
		return Probe{}, false
	}
	return ParseProbe(payload[off:])
}

// Latency is how long ago the probe's packet was sent, by this host's clock.
func (p Probe) Latency(now time.Time) time.Duration { return time.Duration(now.UnixNano() - p.SentAt) }
