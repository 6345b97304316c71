package sfu

import (
	"testing"
	"time"
)

// rwStep is one packet fed to a layerRewriter in a test.
type rwStep struct {
	layer    int8
	seq      uint16
	ts       uint32
	key      bool
	target   int8
	at       time.Duration // since the test's start
	want     rewriteResult
	wantSeq  uint16 // checked when want forwards
	checkSeq bool
}

func TestLayerRewriterSwitchesOnlyAtKeyframesWithContinuousNumbering(t *testing.T) {
	r := layerRewriter{clockRate: 90000}
	seed := func() (uint16, uint32) { return 65530, 4_294_967_000 } // both wrap during the test
	start := time.Unix(1000, 0)
	steps := []rwStep{
		{layer: 1, seq: 10, ts: 100, key: true, target: 0, want: rewriteDrop}, // not the target
		{layer: 0, seq: 500, ts: 9000, target: 0, want: rewriteWait},          // no keyframe yet
		{layer: 0, seq: 501, ts: 12600, key: true, target: 0, want: rewriteSwitched, wantSeq: 65530, checkSeq: true},
		{layer: 0, seq: 502, ts: 16200, target: 0, at: 40 * time.Millisecond, want: rewriteForward, wantSeq: 65531, checkSeq: true},
		{layer: 0, seq: 504, ts: 19800, target: 0, at: 80 * time.Millisecond, want: rewriteForward, wantSeq: 65533, checkSeq: true}, // a gap stays a gap
		{layer: 0, seq: 503, ts: 16200, target: 0, at: 81 * time.Millisecond, want: rewriteForward, wantSeq: 65532, checkSeq: true}, // late, in its slot
		{layer: 0, seq: 499, ts: 9000, target: 0, want: rewriteDrop},                                                                // before the start
		// The allocator wants layer 2: its delta frames wait, layer 0 goes on meanwhile.
		{layer: 2, seq: 7000, ts: 555, target: 2, at: 100 * time.Millisecond, want: rewriteWait},
		{layer: 0, seq: 505, ts: 23400, target: 2, at: 120 * time.Millisecond, want: rewriteForward, wantSeq: 65534, checkSeq: true},
		{layer: 1, seq: 20, ts: 800, key: true, target: 2, want: rewriteDrop}, // neither current nor target
		{layer: 2, seq: 7001, ts: 4155, key: true, target: 2, at: 160 * time.Millisecond, want: rewriteSwitched, wantSeq: 65535, checkSeq: true},
		{layer: 0, seq: 506, ts: 27000, target: 2, at: 161 * time.Millisecond, want: rewriteDrop}, // the old layer is done
		{layer: 2, seq: 7002, ts: 4155, target: 2, at: 162 * time.Millisecond, want: rewriteForward, wantSeq: 0, checkSeq: true},
		// Down again to layer 0, at its keyframe.
		{layer: 0, seq: 507, ts: 30600, key: true, target: 0, at: 200 * time.Millisecond, want: rewriteSwitched, wantSeq: 1, checkSeq: true},
	}
	var lastTS uint32
	haveTS := false
	for i, s := range steps {
		seq, ts, res := r.rewrite(s.layer, s.seq, s.ts, s.key, s.target, start.Add(s.at), seed)
		if res != s.want {
			t.Fatalf("step %d (layer %d seq %d): result %d, want %d", i, s.layer, s.seq, res, s.want)
		}
		if res != rewriteForward && res != rewriteSwitched {
			continue
		}
		if s.checkSeq && seq != s.wantSeq {
			t.Fatalf("step %d: sequence %d, want %d", i, seq, s.wantSeq)
		}
		if haveTS && res == rewriteSwitched && int32(ts-lastTS) <= 0 {
			t.Fatalf("step %d: the switch's timestamp %d does not follow %d", i, ts, lastTS)
		}
		if res == rewriteSwitched && haveTS {
			// The timeline continues by the real time since the last packet sent.
			if gap := int32(ts - lastTS); gap < 1 || gap > 90*60 {
				t.Fatalf("step %d: timestamp advanced %d ticks across the switch", i, gap)
			}
		}
		if int32(ts-lastTS) > 0 || !haveTS {
			lastTS, haveTS = ts, true
		}
	}
}

func TestLayerRewriterClosesSkippedPackets(t *testing.T) {
	r := layerRewriter{clockRate: 90000}
	seed := func() (uint16, uint32) { return 100, 0 }
	at := time.Unix(0, 0)
	if _, _, res := r.rewrite(1, 10, 0, true, 1, at, seed); res != rewriteSwitched {
		t.Fatalf("start: %d", res)
	}
	// Packets 11..15 of layer 1 were skipped (Last-N pause); 16 resumes at a keyframe.
	r.skipped(1, 16, 5)
	seq, _, res := r.rewrite(1, 16, 9000, true, 1, at, seed)
	if res != rewriteForward || seq != 101 {
		t.Fatalf("after the skip: seq %d result %d, want 101 forwarded", seq, res)
	}
	// A skip on a layer not forwarded changes nothing.
	r.skipped(0, 50, 7)
	if seq, _, _ := r.rewrite(1, 17, 9000, false, 1, at, seed); seq != 102 {
		t.Fatalf("seq %d, want 102", seq)
	}
}

func TestLayerOfRID(t *testing.T) {
	for rid, want := range map[string]int8{"q": 0, "h": 1, "f": 2, "l": 0, "m": 1, "high": 2, "x": -1, "": -1} {
		if got := layerOfRID(rid); got != want {
			t.Errorf("layerOfRID(%q) = %d, want %d", rid, got, want)
		}
	}
}

// TestLayerRewriterOutlastsSequenceWrap: a layer forwarded three times round the sequence
// space keeps forwarding (a 16-bit "older than the start" test alone stops at 32,768).
func TestLayerRewriterOutlastsSequenceWrap(t *testing.T) {
	r := layerRewriter{clockRate: 90000}
	seed := func() (uint16, uint32) { return 7, 0 }
	at := time.Unix(0, 0)
	want := uint16(7)
	for i := 0; i < 3*65536; i++ {
		seq := uint16(100 + i)
		got, _, res := r.rewrite(0, seq, uint32(i*3000), i == 0, 0, at, seed)
		if res != rewriteForward && res != rewriteSwitched || got != want {
			t.Fatalf("packet %d: result %d seq %d, want forwarded as %d", i, res, got, want)
		}
		want++
	}
}

// TestLayerRewriterResumesAtAKeyframe: a subscription stopped while nobody beyond its
// link needed it (need.go) resumes on the layer it left only at a keyframe, numbered on
// from the last packet sent, with the time that passed on its timeline.
func TestLayerRewriterResumesAtAKeyframe(t *testing.T) {
	r := layerRewriter{clockRate: 90000}
	seed := func() (uint16, uint32) { return 100, 1000 }
	start := time.Unix(1000, 0)
	if _, _, res := r.rewrite(0, 10, 0, true, 0, start, seed); res != rewriteSwitched {
		t.Fatalf("first keyframe: result %d", res)
	}
	if seq, _, res := r.rewrite(0, 11, 3600, false, 0, start.Add(40*time.Millisecond), seed); res != rewriteForward || seq != 101 {
		t.Fatalf("second packet: result %d seq %d", res, seq)
	}
	r.resume = true // stopped; the layer's packets 12…499 were not forwarded
	if _, _, res := r.rewrite(0, 500, 90000, false, 0, start.Add(2*time.Second), seed); res != rewriteWait {
		t.Fatalf("a delta frame after the stop: result %d, want to wait for a keyframe", res)
	}
	seq, ts, res := r.rewrite(0, 501, 93600, true, 0, start.Add(2040*time.Millisecond), seed)
	if res != rewriteSwitched || seq != 102 {
		t.Fatalf("the keyframe after the stop: result %d seq %d, want a switch numbered 102", res, seq)
	}
	if want := uint32(1000 + 3600 + 2*90000); ts != want {
		t.Fatalf("timestamp %d after 2 s, want %d", ts, want)
	}
	if seq, _, res := r.rewrite(0, 502, 97200, false, 0, start.Add(2080*time.Millisecond), seed); res != rewriteForward || seq != 103 {
		t.Fatalf("after the resume: result %d seq %d", res, seq)
	}
}
