package sfu

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// frameSender feeds an up track 30 fps VP8 frames of 3 packets on a synthetic clock.
type frameSender struct {
	t       *testing.T
	up      *UpTrack
	raw     []byte
	seq     uint16
	ts      uint32
	now     time.Time
	hdr     rtp.Header
	pending pendingCounts
}

// frame sends one frame read readAt after its due time: a delta frame, unless keyframe
// sends it.
func (f *frameSender) frame(readAt time.Duration) {
	for i := 0; i < 3; i++ {
		binary.BigEndian.PutUint16(f.raw[2:4], f.seq)
		binary.BigEndian.PutUint32(f.raw[4:8], f.ts)
		f.seq++
		f.up.forwardAt(f.raw, &f.hdr, &f.pending, f.now.Add(readAt))
	}
	f.ts += 3000
	f.now = f.now.Add(33333 * time.Microsecond)
}

func newFrameSender(t *testing.T, kind webrtc.RTPCodecType) (*frameSender, *sinkWriter) {
	up, raw := benchUpTrack(1)
	up.lag.clockPerSec = 90000
	if kind == webrtc.RTPCodecTypeAudio {
		up.kind, up.codecK = kind, codecOther
	}
	d := (*up.downs.Load())[0]
	w := &sinkWriter{}
	b := *d.binding.Load()
	b.writer = w
	d.binding.Store(&b)
	return &frameSender{t: t, up: up, raw: raw, now: time.Unix(1000, 0)}, w
}

// keyframe sends one VP8 keyframe (its first packet a keyframe start) read readAt after
// its due time; frame sends delta frames.
func (f *frameSender) keyframe(readAt time.Duration) {
	var h rtp.Header
	n, err := h.Unmarshal(f.raw)
	if err != nil {
		f.t.Fatal(err)
	}
	f.raw[n+1] = 0x00 // the VP8 payload header's P bit: 0 for a keyframe
	f.frame(readAt)
	f.raw[n+1] = 0x01 // delta
}

// A reader that falls 500 ms behind skips delta frames until the next keyframe, asks for
// one, and resumes with the subscriber's sequence numbers continuous.
func TestLateVideoSkipsToKeyframe(t *testing.T) {
	f, w := newFrameSender(t, webrtc.RTPCodecTypeVideo)
	f.keyframe(0)
	for i := 0; i < 10; i++ {
		f.frame(0)
	}
	sent := len(w.headers)
	if sent != 33 {
		t.Fatalf("%d packets forwarded on time, want 33", sent)
	}
	// The reader stalls: the next frames are read half a second late. For lagPersist they
	// are still forwarded (it might be a jitter spike upstream), then skipped.
	for i := 0; i < 15; i++ {
		f.frame(500 * time.Millisecond)
	}
	late := len(w.headers) - sent
	if max := 3 * (int(lagPersist/(33333*time.Microsecond)) + 1); late == 0 || late > max {
		t.Fatalf("%d late delta-frame packets forwarded, want some but at most %d (lagPersist)", late, max)
	}
	sent = len(w.headers)
	if !f.up.skipping || f.up.skips.Load() != 1 || !f.up.keyframeDeferred.Load() {
		t.Fatalf("skipping %v, skips %d, keyframe requested %v: want a skip and a keyframe request",
			f.up.skipping, f.up.skips.Load(), f.up.keyframeDeferred.Load())
	}
	// While skipping, every skipped frame asks again (a PLI may be lost or ignored).
	f.up.keyframeDeferred.Store(false)
	f.frame(500 * time.Millisecond)
	if !f.up.keyframeDeferred.Load() {
		t.Fatal("a skipped frame did not ask for a keyframe again")
	}
	late -= 3 // so that 45-late below counts this frame too: 48 packets late, late of them forwarded
	if int(f.up.skipped) != 45-late {
		t.Fatalf("%d packets skipped, want %d", f.up.skipped, 45-late)
	}
	// The keyframe ends the skip even while still late: it is what the subscriber needs.
	f.keyframe(400 * time.Millisecond)
	f.frame(0)
	if got := len(w.headers) - sent; got != 6 {
		t.Fatalf("%d packets after the skip, want the keyframe and the next frame (6)", got)
	}
	for i := 1; i < len(w.headers); i++ {
		if w.headers[i].SequenceNumber != w.headers[i-1].SequenceNumber+1 {
			t.Fatalf("packet %d: sequence %d after %d: the subscriber sees a gap", i, w.headers[i].SequenceNumber, w.headers[i-1].SequenceNumber)
		}
	}
	if ts := w.headers[sent].Timestamp - w.headers[sent-1].Timestamp; ts != uint32(17-(late+3)/3)*3000 {
		t.Fatalf("timestamp advanced %d over the skip, want %d frames' worth: real time passed", ts, 17-(late+3)/3)
	}
	if f.up.skipping || f.up.skipped != 0 {
		t.Fatalf("after the skip: skipping %v, skipped %d", f.up.skipping, f.up.skipped)
	}
}

// Audio is never skipped, however late.
func TestLateAudioIsForwarded(t *testing.T) {
	f, w := newFrameSender(t, webrtc.RTPCodecTypeAudio)
	for i := 0; i < 5; i++ {
		f.frame(time.Duration(i) * 300 * time.Millisecond)
	}
	if len(w.headers) != 15 || f.up.skips.Load() != 0 {
		t.Fatalf("%d of 15 audio packets forwarded, %d skips", len(w.headers), f.up.skips.Load())
	}
}

// A frame whose first packet was forwarded is forwarded whole, even if the reader falls
// behind in its middle.
func TestNoHalfFrames(t *testing.T) {
	f, w := newFrameSender(t, webrtc.RTPCodecTypeVideo)
	f.keyframe(0)
	f.frame(0)
	// One frame whose packets are read on time, late, late.
	for i, late := range []time.Duration{0, 400 * time.Millisecond, 400 * time.Millisecond} {
		binary.BigEndian.PutUint16(f.raw[2:4], f.seq)
		binary.BigEndian.PutUint32(f.raw[4:8], f.ts)
		f.seq++
		f.up.forwardAt(f.raw, &f.hdr, &f.pending, f.now.Add(late))
		if len(w.headers) != 7+i {
			t.Fatalf("packet %d of the frame not forwarded", i)
		}
	}
}

// Packets that arrive late because the publisher sent them late (its reads had to wait:
// no backlog in the bridge) are forwarded: skipping would not make them earlier.
func TestUpstreamDelayIsNotSkipped(t *testing.T) {
	f, w := newFrameSender(t, webrtc.RTPCodecTypeVideo)
	f.keyframe(0)
	for i := 0; i < 30; i++ {
		late := time.Duration(0)
		if i >= 5 {
			late = 500 * time.Millisecond
		}
		f.up.lastWait = f.now.Add(late) // the reader waited for each of these
		f.frame(late)
	}
	if len(w.headers) != 93 || f.up.skips.Load() != 0 {
		t.Fatalf("%d of 93 packets forwarded, %d skips: an upstream delay was taken for a backlog", len(w.headers), f.up.skips.Load())
	}
}
