package sfu

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/rtpvideo"
)

// simLayer is one layer a simulcast test publisher sends: RID, the width and height its
// keyframes announce, packets per frame and their size. At 25 frames/s the three give
// about 130 kbit/s, 700 kbit/s and 1.4 Mbit/s with headers, as a browser's 180p/360p/720p.
type simLayer struct {
	rid           string
	width, height uint16
	perFrame      int
	size          int
}

var simLayers = [maxLayers]simLayer{
	{"q", 320, 180, 1, 600},
	{"h", 640, 360, 3, 1100},
	{"f", 1280, 720, 6, 1150},
}

// simPublisher is the simulcast state of a test endpoint that publishes three layers.
type simPublisher struct {
	tracks [maxLayers]*webrtc.TrackLocalStaticRTP
	want   [maxLayers]atomic.Bool  // a PLI for the layer arrived: next frame is a keyframe
	plis   [maxLayers]atomic.Int64 // PLIs received per layer
	// A pion sender does not mark simulcast packets itself: each carries the MID and its
	// RID in the negotiated extensions, as a browser's do.
	mid          string
	midID, ridID uint8
}

// publishSimulcast publishes audio and a VP8 camera in three layers (q, h, f), as the join
// page does, and starts sending.
func (e *testEndpoint) publishSimulcast() *simPublisher {
	t := e.t
	sp := &simPublisher{}
	stream := "stream-" + e.name
	var err error
	e.audio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio-"+e.name, stream)
	if err != nil {
		t.Fatal(err)
	}
	vc := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	for i, l := range simLayers {
		if sp.tracks[i], err = webrtc.NewTrackLocalStaticRTP(vc, "video-"+e.name, stream, webrtc.WithRTPStreamID(l.rid)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.pub.AddTransceiverFromTrack(e.audio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	tc, err := e.pub.AddTransceiverFromTrack(sp.tracks[0], webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range sp.tracks[1:] {
		if err := tc.Sender().AddEncoding(tr); err != nil {
			t.Fatal(err)
		}
	}
	e.negotiatePublisher(t)
	sp.mid = tc.Mid()
	for _, x := range tc.Sender().GetParameters().HeaderExtensions {
		switch x.URI {
		case sdp.SDESMidURI:
			sp.midID = uint8(x.ID)
		case sdp.SDESRTPStreamIDURI:
			sp.ridID = uint8(x.ID)
		}
	}
	if sp.midID == 0 || sp.ridID == 0 {
		t.Fatalf("simulcast extensions not negotiated: mid %d rid %d", sp.midID, sp.ridID)
	}
	for i, l := range simLayers {
		go client.ReadSimulcastKeyframeRequests(tc.Sender(), l.rid, func() {
			sp.want[i].Store(true)
			sp.plis[i].Add(1)
		})
	}
	go e.sendSimulcast(sp)
	return sp
}

// simPayload writes a VP8 packet of layer: the payload descriptor, then for a frame's
// first packet the VP8 frame tag (keyframes with the start code, width and height of RFC
// 6386 §9.1), and the layer's index in the last byte, for a receiver to check.
func simPayload(p []byte, layer int, first, key bool) []byte {
	l := simLayers[layer]
	p = p[:l.size]
	clear(p[:12])
	if first {
		p[0] = 0x10 // S=1, partition 0
		p[1] = 0x11 // delta frame, shown
		if key {
			p[1] = 0x10
			p[4], p[5], p[6] = 0x9d, 0x01, 0x2a
			binary.LittleEndian.PutUint16(p[7:], l.width)
			binary.LittleEndian.PutUint16(p[9:], l.height)
		}
	}
	p[len(p)-1] = byte(layer)
	return p
}

// sendSimulcast sends audio every 20 ms and a frame of each layer every 40 ms; a layer
// sends a keyframe first and when asked (PLI on its SSRC), as a browser's encoders do.
func (e *testEndpoint) sendSimulcast(sp *simPublisher) {
	var seq [maxLayers]uint16
	var ts [maxLayers]uint32
	for i := range ts {
		ts[i] = uint32(i) * 1_000_000 // the layers' clocks are unrelated, as a browser's
	}
	buf := make([]byte, 1200)
	e.paceAudio(func(n int) {
		if n%2 == 1 {
			return
		}
		for i, l := range simLayers {
			ts[i] += 3600
			key := n == 0 || sp.want[i].Swap(false)
			for k := 0; k < l.perFrame; k++ {
				seq[i]++
				h := rtp.Header{Version: 2, SequenceNumber: seq[i], Timestamp: ts[i], Marker: k == l.perFrame-1}
				_ = h.SetExtension(sp.midID, []byte(sp.mid))
				_ = h.SetExtension(sp.ridID, []byte(l.rid))
				_ = sp.tracks[i].WriteRTP(&rtp.Packet{Header: h, Payload: simPayload(buf, i, k == 0, key)})
			}
		}
	})
}

// layerWatch reads a subscriber's video track of a simulcast source and records what a
// viewer would see: which layer each packet belongs to (the publisher's marker byte),
// whether each change of layer starts on a keyframe, the width of the last keyframe, the
// sequence numbering and the bytes received per layer.
type layerWatch struct {
	mu          sync.Mutex
	ssrcs       map[uint32]bool
	packets     int64
	layer       int
	width       int
	changes     int // changes of layer, the first packet included
	badChanges  int // of them, those not at a keyframe's first packet
	backwards   int // packets numbered at or before the previous one
	gaps        int64
	bytes       [maxLayers]int64
	tsBackwards int // a packet whose timestamp runs back across a change of layer
	lastSeq     uint16
	lastTS      uint32
	// suspect: the last change of layer was first seen off a keyframe, at changeSeq, after
	// the old layer's prevLayerSeq.
	suspect                 bool
	changeSeq, prevLayerSeq uint16
	// seen holds the sequence numbers received lately, by number mod seenRing, to tell a
	// repair from a duplicate.
	seen [seenRing]int32
	// frameAt is when the last frame's end (marker) arrived, in order; frozen the longest
	// wait between two since resetFrozen.
	frameAt time.Time
	frozen  time.Duration
}

// resetFrozen starts measuring the longest wait between frames anew.
func (w *layerWatch) resetFrozen() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.frozen = 0
}

// longestFrozen is the longest wait between two frames since resetFrozen, the wait for
// the next one included.
func (w *layerWatch) longestFrozen() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.frameAt.IsZero() {
		return max(w.frozen, time.Since(w.frameAt))
	}
	return w.frozen
}

const seenRing = 1024

func newLayerWatch() *layerWatch {
	w := &layerWatch{ssrcs: map[uint32]bool{}, layer: -1}
	for i := range w.seen {
		w.seen[i] = -1
	}
	return w
}

// read consumes tr until it ends.
func (w *layerWatch) read(tr *webrtc.TrackRemote) {
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		if len(pkt.Payload) < 12 {
			continue
		}
		layer := int(pkt.Payload[len(pkt.Payload)-1])
		key := rtpvideo.VP8KeyframeStart(pkt.Payload)
		w.mu.Lock()
		w.ssrcs[pkt.SSRC] = true
		late := false
		if w.packets > 0 {
			d := int16(pkt.SequenceNumber - w.lastSeq)
			if d <= 0 {
				// A repair (NACK, RTX) of an earlier packet: it takes its place in the
				// decoder's order, behind the packets already seen, so it changes nothing;
				// it fills a gap unless it is a copy of one already here.
				w.backwards++
				if w.seen[pkt.SequenceNumber%seenRing] != int32(pkt.SequenceNumber) {
					w.gaps--
				}
				late = true
			} else {
				w.gaps += int64(d - 1)
			}
		}
		w.seen[pkt.SequenceNumber%seenRing] = int32(pkt.SequenceNumber)
		if late {
			// A change first seen off a keyframe is fine if the keyframe's first packet
			// was lost on the way and arrives now, repaired, in its place.
			if w.suspect && key && layer == w.layer && int16(pkt.SequenceNumber-w.changeSeq) < 0 &&
				int16(pkt.SequenceNumber-w.prevLayerSeq) > 0 {
				w.suspect = false
				w.badChanges--
			}
			w.packets++
			w.mu.Unlock()
			continue
		}
		if layer != w.layer {
			w.changes++
			w.suspect = !key
			if !key {
				w.badChanges++
				w.changeSeq, w.prevLayerSeq = pkt.SequenceNumber, w.lastSeq
			}
			if w.packets > 0 && int32(pkt.Timestamp-w.lastTS) <= 0 {
				w.tsBackwards++
			}
			w.layer = layer
		}
		if key {
			w.width = int(binary.LittleEndian.Uint16(pkt.Payload[7:]) & 0x3fff)
		}
		if layer >= 0 && layer < maxLayers {
			w.bytes[layer] += int64(len(pkt.Payload) + 12)
		}
		w.packets++
		w.lastSeq, w.lastTS = pkt.SequenceNumber, pkt.Timestamp
		if pkt.Marker {
			now := time.Now()
			if !w.frameAt.IsZero() {
				w.frozen = max(w.frozen, now.Sub(w.frameAt))
			}
			w.frameAt = now
		}
		w.mu.Unlock()
	}
}

// snapshot is a copy of the watch's figures.
type watchSnapshot struct {
	at                                       time.Time
	packets, gaps                            int64
	layer, width, changes, badChanges, ssrcs int
	backwards, tsBackwards                   int
	bytes                                    [maxLayers]int64
}

func (w *layerWatch) snapshot() watchSnapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return watchSnapshot{at: time.Now(), packets: w.packets, gaps: w.gaps, layer: w.layer, width: w.width,
		changes: w.changes, badChanges: w.badChanges, ssrcs: len(w.ssrcs), backwards: w.backwards,
		tsBackwards: w.tsBackwards, bytes: w.bytes}
}

// rate is the bit rate received between two snapshots, all layers.
func (s watchSnapshot) rate(before watchSnapshot) float64 {
	var b int64
	for i := range s.bytes {
		b += s.bytes[i] - before.bytes[i]
	}
	return float64(b) * 8 / s.at.Sub(before.at).Seconds()
}
