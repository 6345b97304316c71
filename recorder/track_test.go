package recorder

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/cau-project/cau/internal/testmedia"
)

// unixToNTP converts Unix ns to a 64-bit NTP timestamp (the inverse of ntpToUnixNano).
func unixToNTP(ns int64) uint64 {
	secs := uint64(ns/1e9) + ntpEpochOffset
	frac := uint64(ns%1e9) << 32 / 1e9
	return secs<<32 | frac
}

func TestSenderClock(t *testing.T) {
	base := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	if got := ntpToUnixNano(unixToNTP(base.UnixNano())); time.Duration(got-base.UnixNano()).Abs() > time.Microsecond {
		t.Fatalf("NTP round trip: %v", time.Unix(0, got))
	}
	c := senderClock{rate: 90000}
	// RTP time just below the wrap: frames after the wrap must keep counting up.
	ts0 := uint32(0xFFFF_0000)
	c.ts.extend(ts0)
	c.senderReport(unixToNTP(base.UnixNano()), ts0, base.Add(20*time.Millisecond))
	if !c.synced || c.offsetNs != int64(20*time.Millisecond) {
		t.Fatalf("after SR: synced %v offset %v", c.synced, time.Duration(c.offsetNs))
	}
	after := ts0 + 90000 // one second later, past the wrap
	if got := time.Duration(c.unixNano(c.ts.extend(after)) - base.UnixNano()); got != time.Second {
		t.Errorf("one second of RTP across the wrap maps to %v", got)
	}
	// Reports from a late sender (5 and 40 ms late) keep the anchor: the first was less late.
	c.senderReport(unixToNTP(base.Add(2*time.Second+5*time.Millisecond).UnixNano()), ts0+2*90000, base)
	c.senderReport(unixToNTP(base.Add(3*time.Second+40*time.Millisecond).UnixNano()), ts0+3*90000, base)
	if c.reanchors != 0 {
		t.Errorf("re-anchored on late reports")
	}
	// One less late by 30 ms moves the mapping back by 30 ms.
	c.senderReport(unixToNTP(base.Add(4*time.Second-30*time.Millisecond).UnixNano()), ts0+4*90000, base)
	at := func(sec uint32) time.Duration {
		return time.Duration(c.unixNano(c.ts.peek(ts0+sec*90000)) - base.UnixNano())
	}
	if c.reanchors != 1 || (time.Duration(c.slew)+30*time.Millisecond).Abs() > time.Microsecond {
		t.Errorf("30 ms earlier report: reanchors %d, slew %v", c.reanchors, time.Duration(c.slew))
	}
	// The correction applies 2 ms per frame: 15 frames, each at most 2 ms closer.
	prev := c.place(c.ts.peek(ts0 + 4*90000))
	for i := uint32(1); i <= 16; i++ {
		ns := c.place(c.ts.peek(ts0 + 4*90000 + i*3000))
		if d := time.Duration(ns - prev); d < 31*time.Millisecond || d > 34*time.Millisecond {
			t.Fatalf("frame %d: %v after the previous", i, d)
		}
		prev = ns
	}
	if c.slew != 0 || (at(4)-(4*time.Second-30*time.Millisecond)).Abs() > time.Microsecond {
		t.Errorf("after slewing: slew %v, 4 s maps to %v", time.Duration(c.slew), at(4))
	}
	// A real drift: every report from now on 50 ms later than the mapping. The clock
	// follows once the earlier reports have left the window.
	for i := uint32(5); i < 5+srWindow; i++ {
		c.senderReport(unixToNTP(base.Add(time.Duration(i)*time.Second+20*time.Millisecond).UnixNano()), ts0+i*90000, base)
	}
	if c.reanchors != 2 || (at(30)-(30*time.Second+20*time.Millisecond)).Abs() > time.Microsecond {
		t.Errorf("after a lasting drift: reanchors %d, 30 s maps to %v", c.reanchors, at(30))
	}
}

func TestVP8KeyframeSize(t *testing.T) {
	clip := testmedia.MakeClip(t, 320, 240)
	w, h, ok := vp8Size(clip.Video[0])
	if !ok || w != 320 || h != 240 || !codecVP8.keyframe(clip.Video[0]) {
		t.Fatalf("keyframe: %dx%d %v", w, h, ok)
	}
	if _, _, ok := vp8Size(clip.Video[1]); ok || codecVP8.keyframe(clip.Video[1]) {
		t.Fatal("frame 1 read as a keyframe")
	}
}

func TestAVCConfig(t *testing.T) {
	sps := []byte{0x67, 0x42, 0xC0, 0x1F, 0xAA}
	pps := []byte{0x68, 0xCE, 0x3C, 0x80}
	idr := []byte{0x65, 0x88, 0x84}
	var frame []byte
	for _, n := range [][]byte{sps, pps, idr} {
		frame = append(frame, 0, 0, 0, byte(len(n)))
		frame = append(frame, n...)
	}
	if !codecH264.keyframe(frame) {
		t.Error("IDR frame not seen as a keyframe")
	}
	want := []byte{1, 0x42, 0xC0, 0x1F, 0xFF, 0xE1, 0, 5, 0x67, 0x42, 0xC0, 0x1F, 0xAA, 1, 0, 4, 0x68, 0xCE, 0x3C, 0x80}
	if got := avcConfig(frame); string(got) != string(want) {
		t.Errorf("avcC % x, want % x", got, want)
	}
	if avcConfig(frame[len(frame)-7:]) != nil {
		t.Error("avcC from a frame without SPS/PPS")
	}
}

// vp8Packets packetizes frames of clip like a browser would (1200-byte packets, picture
// ids), one slice of packets per frame.
func vp8Packets(clip *testmedia.Clip, n int) [][]*rtp.Packet {
	p := rtp.NewPacketizer(1200, 96, 0x1234, &codecs.VP8Payloader{EnablePictureID: true}, rtp.NewFixedSequencer(65500), 90000)
	out := make([][]*rtp.Packet, n)
	for i := range n {
		out[i] = p.Packetize(clip.Video[i%len(clip.Video)], 90000/testmedia.FPS)
	}
	return out
}

func marshal(t *testing.T, p *rtp.Packet) []byte {
	t.Helper()
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTrackWaitsForKeyframeAfterLoss feeds a video track a real VP8 stream with one whole
// frame lost (a loss samplebuilder alone does not report) and a padding packet (not a
// loss), and checks that what the track queues decodes: it starts at a keyframe, skips
// from the loss to the next keyframe, asks for one, and counts one gap.
func TestTrackWaitsForKeyframeAfterLoss(t *testing.T) {
	clip := testmedia.MakeClip(t, 320, 240)
	plis := 0
	tr := newTrack("video", codecVP8, nil, func() { plis++ })
	frames := vp8Packets(clip, 3*testmedia.FPS) // frames 0..89: keyframes at 0, 30, 60
	at := time.Unix(1_800_000_000, 0)
	tr.rtp(marshal(t, frames[0][0]), at) // sets the SSRC
	sr := &rtcp.SenderReport{SSRC: 0x1234, NTPTime: unixToNTP(at.UnixNano()), RTPTime: frames[0][0].Timestamp}
	raw, err := sr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tr.rtcp(raw, at)
	const lost = 10
	for i, pkts := range frames {
		for j, p := range pkts {
			if i == 0 && j == 0 || i == lost {
				continue
			}
			tr.rtp(marshal(t, p), at.Add(time.Duration(i)*time.Second/testmedia.FPS))
		}
		if i == 3 { // a padding-only packet between frames takes a sequence number
			pad := &rtp.Packet{Header: rtp.Header{Version: 2, Padding: true, PaddingSize: 8, PayloadType: 96,
				SequenceNumber: pkts[len(pkts)-1].SequenceNumber + 1, Timestamp: pkts[0].Timestamp, SSRC: 0x1234},
				Payload: []byte{}}
			// The packetizer's next sequence number must skip it.
			for _, later := range frames[4:] {
				for _, q := range later {
					q.SequenceNumber++
				}
			}
			tr.rtp(marshal(t, pad), at)
		}
	}
	if !tr.clock.synced || tr.clock.fallback {
		t.Fatalf("clock not synced on the sender report")
	}
	var keys []int
	for i, f := range tr.queue {
		if f.key {
			keys = append(keys, i)
		}
		if i > 0 && f.ns <= tr.queue[i-1].ns {
			t.Fatalf("frame %d not after frame %d", i, i-1)
		}
	}
	// Frames 0..9 play, 11..29 are skipped, 30..88 play (89 waits for a successor).
	if len(tr.queue) != 10+59 || !tr.queue[0].key || len(keys) != 3 || keys[1] != 10 {
		t.Fatalf("queued %d frames, keyframes at %v", len(tr.queue), keys)
	}
	if tr.info.Gaps != 1 || tr.info.FramesSkipped != 19 || plis == 0 {
		t.Errorf("gaps %d, skipped %d, keyframe requests %d", tr.info.Gaps, tr.info.FramesSkipped, plis)
	}
	if got := time.Duration(tr.queue[10].ns - tr.queue[0].ns); got != time.Second {
		t.Errorf("frame 30 placed %v after frame 0", got)
	}
}

// TestTrackFallsBackWithoutSenderReports: a publisher that sends no RTCP is placed on
// arrival times after syncWait, with the frames held meanwhile.
func TestTrackFallsBackWithoutSenderReports(t *testing.T) {
	clip := testmedia.MakeClip(t, 320, 240)
	tr := newTrack("video", codecVP8, nil, nil)
	at := time.Unix(1_800_000_000, 0)
	for i, pkts := range vp8Packets(clip, 5*testmedia.FPS) {
		for _, p := range pkts {
			tr.rtp(marshal(t, p), at.Add(time.Duration(i)*time.Second/testmedia.FPS))
		}
	}
	if !tr.clock.fallback || tr.syncMode() != "arrival" || len(tr.unsynced) != 0 {
		t.Fatalf("fallback %v, %d frames still held", tr.clock.fallback, len(tr.unsynced))
	}
	if len(tr.queue) != 5*testmedia.FPS-1 || !tr.queue[0].key {
		t.Fatalf("queued %d frames", len(tr.queue))
	}
}

// FuzzTrackInput: whatever a publisher sends as RTP or RTCP, the track neither panics
// nor queues a frame out of order.
func FuzzTrackInput(f *testing.F) {
	p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 1, Timestamp: 3000, SSRC: 5, Marker: true},
		Payload: []byte{0x90, 0x80, 0x01, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00}}
	b, _ := p.Marshal()
	f.Add(b, false)
	sr, _ := (&rtcp.SenderReport{SSRC: 5, NTPTime: 1 << 40, RTPTime: 3000}).Marshal()
	f.Add(sr, true)
	f.Fuzz(func(t *testing.T, data []byte, isRTCP bool) {
		for _, c := range []codec{codecVP8, codecH264, codecOpus} {
			kind := "video"
			if !c.video {
				kind = "audio"
			}
			tr := newTrack(kind, c, nil, func() {})
			at := time.Unix(1_800_000_000, 0)
			for i := range 3 {
				if isRTCP {
					tr.rtcp(data, at)
				} else {
					tr.rtp(append([]byte(nil), data...), at.Add(time.Duration(i)*syncWait))
				}
			}
			tr.spec()
		}
	})
}
