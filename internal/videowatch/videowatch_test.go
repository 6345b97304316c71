package videowatch

import (
	"encoding/binary"
	"testing"
	"time"
)

// stream builds what a receiver gets: VP8 packets with a 15-bit picture id, TL0PICIDX
// and TID, frames of three packets 33 ms apart, numbered on as the bridge would.
type stream struct {
	r   Recorder
	t0  time.Time
	seq uint16
	ts  uint32
	n   int // frames sent
}

type encoding struct {
	pid    uint16
	tl0    uint8
	width  int
	height int
}

func vp8(first, key bool, e *encoding, tid uint8) []byte {
	p := make([]byte, 0, 40)
	b0 := byte(0x80)
	if first {
		b0 |= 0x10
	}
	p = append(p, b0, 0xe0, 0x80|byte(e.pid>>8), byte(e.pid), e.tl0, tid<<6)
	if first {
		tag := byte(0x11) // shown, inter frame
		if key {
			tag = 0x10
		}
		p = append(p, tag, 0, 0, 0x9d, 0x01, 0x2a, 0, 0, 0, 0)
		binary.LittleEndian.PutUint16(p[len(p)-4:], uint16(e.width))
		binary.LittleEndian.PutUint16(p[len(p)-2:], uint16(e.height))
	}
	return append(p, make([]byte, 20)...)
}

// frame sends the next frame of e: drop lists the packets (0..2) that never arrive, late
// those that arrive after a delay.
func (s *stream) frame(e *encoding, key bool, drop map[int]bool, late map[int]time.Duration) {
	at := s.t0.Add(time.Duration(s.n) * 33 * time.Millisecond)
	s.n++
	s.ts += 3000
	for i := 0; i < 3; i++ {
		s.seq++
		if drop[i] {
			continue
		}
		s.r.Add(at.Add(late[i]), s.seq, s.ts, i == 2, vp8(i == 0, key, e, 0))
	}
	e.pid = (e.pid + 1) & 0x7fff
	e.tl0++
}

func TestParseVP8(t *testing.T) {
	e := &encoding{pid: 300, tl0: 7, width: 640, height: 360}
	d := parseVP8(vp8(true, true, e, 2))
	if !d.start || !d.key || d.pid != 300 || d.tl0 != 7 || d.tid != 2 || d.width != 640 || d.height != 360 {
		t.Errorf("parsed %+v", d)
	}
	// A 7-bit picture id, no temporal layers, a delta frame's middle packet.
	d = parseVP8([]byte{0x80, 0x80, 0x05, 0xaa})
	if d.start || d.key || !d.hasPID || d.pid != 5 || d.hasTL0 || d.hasTID {
		t.Errorf("parsed %+v", d)
	}
	for _, p := range [][]byte{{}, {0x80}, {0x80, 0x80}, {0x80, 0x80, 0x80}, {0x80, 0x40}, {0x80, 0x20}} {
		if !parseVP8(p).malformed {
			t.Errorf("%x: not malformed", p)
		}
	}
}

// The decoder model: a lost packet freezes the picture until the next keyframe; a
// repaired one delays its frame and those after; a switch at a keyframe is seen as such,
// one off a keyframe too; whole frames lost are not a switch.
func TestAnalyze(t *testing.T) {
	s := &stream{t0: time.Unix(1000, 0)}
	top := &encoding{pid: 1000, tl0: 50, width: 1280, height: 720}
	low := &encoding{pid: 20000, tl0: 200, width: 320, height: 180}
	for i := 0; i < 30; i++ { // frames 0-29: a keyframe, a loss at 10, a keyframe at 20
		s.frame(top, i == 0 || i == 20, map[int]bool{1: i == 10}, map[int]time.Duration{2: map[bool]time.Duration{true: 100 * time.Millisecond}[i == 25]})
	}
	for i := 0; i < 10; i++ { // frames 30-39: the low layer from a keyframe, frames 35-36 lost whole
		if i == 5 || i == 6 {
			s.frame(low, false, map[int]bool{0: true, 1: true, 2: true}, nil)
			continue
		}
		s.frame(low, i == 0, nil, nil)
	}
	for i := 0; i < 5; i++ { // frames 40-44: back to the top, off a keyframe
		s.frame(top, false, nil, nil)
	}
	rep := s.r.Analyze(s.t0, s.t0.Add(45*33*time.Millisecond))
	if len(rep.Switches) != 2 {
		t.Fatalf("switches %+v, want 2", rep.Switches)
	}
	if sw := rep.Switches[0]; !sw.Known || !sw.Key || sw.Width != 320 || sw.PrevWidth != 1280 {
		t.Errorf("first switch %+v", sw)
	}
	if sw := rep.Switches[1]; !sw.Known || sw.Key {
		t.Errorf("second switch %+v, want one off a keyframe", sw)
	}
	// Shown: 0-9, 20-34 (25 late by 100 ms), 37 onwards needs 36, lost: the chain breaks.
	if want := 10 + 15; rep.Shown != want {
		t.Errorf("%d frames shown, want %d", rep.Shown, want)
	}
	if want := 11 * 33 * time.Millisecond; rep.MaxFreeze != 11*33*time.Millisecond {
		t.Errorf("longest freeze %v, want %v (frame 9 to frame 20)", rep.MaxFreeze, want)
	}
	if rep.Freezes != 2 { // frames 9→20, and 34 to the end of the window
		t.Errorf("%d freezes, want 2", rep.Freezes)
	}
	var at25, at26 time.Time
	for _, f := range rep.Frames {
		switch f.Start {
		case 25*3 + 1:
			at25 = f.Shown
		case 26*3 + 1:
			at26 = f.Shown
		}
	}
	if d := at25.Sub(s.t0); d != 25*33*time.Millisecond+100*time.Millisecond {
		t.Errorf("frame 25 shown at %v, want when its repair came", d)
	}
	if !at26.Equal(at25) {
		t.Errorf("frame 26 shown at %v, before frame 25 (%v)", at26.Sub(s.t0), at25.Sub(s.t0))
	}
	if rep.MeanWidth <= 320 || rep.MeanWidth >= 1280 {
		t.Errorf("mean width %.0f, want between the layers'", rep.MeanWidth)
	}
}
