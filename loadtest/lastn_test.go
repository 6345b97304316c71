//go:build !race

package loadtest_test

import (
	"testing"
	"time"

	"github.com/cau-project/cau/loadtest"
	"github.com/cau-project/cau/sfu/speaker"
)

// TestDiscussionLastN (issue 10) is a discussion meeting under Last-N through the public
// protocol: 16 endpoints, 10 publishing simulcast video and audio with levels, 3 of them
// talking in turns of 1 s, the others silent, every endpoint showing one large tile, three
// small ones and the other publishers hidden; the server's Last-N is 4 videos and 2 audios.
// The report's Last-N section must find every subscriber receiving at most 2 + 1 audio
// streams (the chair's site is pinned) and 4 videos, nothing from a site that never
// talked or a hidden tile, the talker of each turn heard by everyone within its turn, no
// flapping of the dominant speaker, and each tile at the layer its height asks for.
//
// Built without the race detector (make test runs it apart, as TestJoinTimeBound): under
// it, on a 2-core box shared with other suites, 16 endpoints' 10 simulcast publications
// never got their media connections up (metrics scrapes timed out at load 21); without
// it the run takes about 20 s.
func TestDiscussionLastN(t *testing.T) {
	lastN := speaker.Params{VideoN: 4, AudioN: 2}
	cfg := loadtest.DefaultConfig()
	cfg.Meeting, cfg.Endpoints, cfg.Publishers, cfg.Duration = "lastn", 16, 10, 10*time.Second
	cfg.VideoKbps, cfg.FPS, cfg.Simulcast = 150, 5, true // light: a shared 2-core box
	// The view shows the grid once everyone has talked (the chair large, the three talkers
	// small) and hides the six silent publishers.
	cfg.Talkers, cfg.TalkEvery, cfg.ViewTiles = 3, time.Second, 4
	cfg.VideoN, cfg.AudioN = lastN.VideoN, lastN.AudioN
	cfg.JoinTimeout, cfg.Thresholds.MaxJoinP95 = 30*time.Second, 0 // what is checked here is what arrives, not join time on a loaded box
	cfg.Thresholds.MaxLossPct = -1                                 // loss on a loaded box is TestSmoke's
	// Under-delivery grows with the box's load (at load 46 on 2 cores the server's selector
	// fell seconds behind the levels: 88% of the turns missed a stream); over-delivery does
	// not, and is asserted to be at most 2%.
	cfg.Thresholds.MaxLastNMissPct = 10
	rep := runOn(t, startServerWith(t, lastN), cfg)

	if e := rep.Endpoints; e.Joined != 16 || e.Failed != 0 || e.Dropped != 0 {
		t.Errorf("endpoints %+v: want all 16 joined", e)
	}
	l := rep.LastN
	if l == nil {
		t.Fatal("no Last-N section with talkers")
	}
	t.Logf("last-N: %+v", *l)
	if l.Turns < 8 || l.Samples < 8*15 {
		t.Errorf("%d turns, %d samples: want at least 8 turns sampled over the 16 endpoints", l.Turns, l.Samples)
	}
	// Each subscriber: the pinned chair and the two loudest at most; never more than the grid.
	if l.Audio.Max > 3 || l.Video.Max > 4 || l.Audio.Median < 1 || l.Video.Median < 1 {
		t.Errorf("per subscriber audio %+v, video %+v: want 1 ≤ median, max ≤ 2 + 1 audio and 4 videos", l.Audio, l.Video)
	}
	// Over-delivery: none by Last-N's rules; a subscriber whose reader lags a turn behind
	// can see a turn's change late (3 verdicts of 160 at load 26), so 2% is allowed.
	if over := l.OverAudio + l.OverVideo; over*50 > l.Samples {
		t.Errorf("over-delivery: %d audio, %d video streams Last-N or the view should have held back: %v",
			l.OverAudio, l.OverVideo, l.Misses)
	}
	// A turn's verdict needs a stream missing at each of its three samples (at 65%, 80% and
	// 95% of the turn): a loaded box may still be letting the talker through at a few
	// subscribers; the threshold above bounds that.
	if !rep.Pass {
		t.Errorf("run failed its thresholds: %v", rep.Violations)
	}
	heard := l.NewTalker.Count + int64(l.NewTalkerKept)
	if heard == 0 || int64(l.NewTalkerLate)*10 > heard {
		t.Errorf("new talkers: heard by %d (after %+v ms), already by %d, not within the turn by %d: want 90%% within the turn",
			l.NewTalker.Count, l.NewTalker, l.NewTalkerKept, l.NewTalkerLate)
	}
	// Three sites talking in turns of 1 s: one change per turn at most (the hysteresis).
	if l.DominantChanges == 0 || l.DominantChanges > l.Turns+1 {
		t.Errorf("%d dominant-speaker changes in %d turns: want 1 to turns + 1", l.DominantChanges, l.Turns)
	}
	tf := l.Tiles
	if tf == nil {
		t.Fatal("no tile figures with views")
	}
	// 16 endpoints × 4 shown tiles: most get video at their layer (the large tile the top,
	// the small ones the low); none above it, no hidden tile any video.
	if tf.Above != 0 || tf.HiddenWithVideo != 0 || tf.AtLayer < 16 || tf.Large[2] == 0 || tf.Small[0] == 0 {
		t.Errorf("tiles %+v: want none above its layer or hidden with video, large tiles at the top, small at the low", *tf)
	}
}
