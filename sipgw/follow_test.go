package sipgw_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/internal/testmedia"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/protocol"
)

// publishH264At joins a pion publisher of an H.264 clip of the given size to meeting,
// from site.
func publishH264At(t *testing.T, a *app.App, meeting, site string, clip *testmedia.Clip) {
	t.Helper()
	pub := testmedia.NewPublisherOf(t, "pion-"+site, 0, webrtc.MimeTypeH264)
	pub.PublishWHIP(t, a.URL(), meeting, token(t, a, meeting, site, site))
	pub.Start(func(int) *testmedia.Clip { return clip })
	t.Cleanup(pub.Close)
}

// lastSizes is the sequence of picture sizes the room decoded, checked to decode
// without an error (a switch that is not at a keyframe shows as a decoding error).
func lastSizes(t *testing.T, r *rtpRoom) ([]string, string) {
	t.Helper()
	path := r.receivedVideo()
	return testmedia.FrameSizes(t, path), testmedia.DecodeErrors(t, path)
}

// TestRoomFollowsTheFloor: in training mode a room is sent the floor holder's camera,
// and a new grant switches it at the new holder's keyframe (the room's H.264 decodes
// without an error across the switch). Two pion publishers send clips of different
// sizes, so the sizes the room decodes say whose picture it shows.
func TestRoomFollowsTheFloor(t *testing.T) {
	testmedia.Need(t)
	const meeting = "tap-huan"
	a, _ := start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	chair := dialChair(ctx, t, a, meeting)
	big, small := testmedia.MakeH264Clip(t, 320, 240), testmedia.MakeH264Clip(t, 176, 144)
	publishH264At(t, a, meeting, "ha-noi", big)
	publishH264At(t, a, meeting, "hue", small)

	room := dialRTPRoom(t, a.SIP().Addr(), meeting, "Phòng họp Đà Nẵng")
	grant := func(site string) time.Time {
		t.Helper()
		at := time.Now()
		if _, err := chair.FloorAction(ctx, protocol.FloorAction{Action: protocol.FloorGrant, Site: site,
			Mic: true, Camera: true}); err != nil {
			t.Fatalf("grant %s: %v", site, err)
		}
		return at
	}
	if _, err := chair.FloorAction(ctx, protocol.FloorAction{Action: protocol.FloorSetMode, Mode: "training"}); err != nil {
		t.Fatal(err)
	}
	var took []time.Duration
	for i, step := range []struct {
		site string
		clip *testmedia.Clip
		size string
	}{{"ha-noi", big, "320x240"}, {"hue", small, "176x144"}, {"ha-noi", big, "320x240"}} {
		before := room.spsTime(clipSPS(t, step.clip))
		at := grant(step.site)
		testutil.Eventually(t, 20*time.Second, func() string {
			sizes, errs := lastSizes(t, room)
			switch {
			case errs != "":
				return "the room's video does not decode: " + errs
			case len(sizes) == 0 || sizes[len(sizes)-1] != step.size:
				return fmt.Sprintf("step %d: the room shows %v, want %s's %s last", i, sizes, step.site, step.size)
			}
			return ""
		})
		// The first SPS of the new holder after the grant (a site granted twice sends
		// the same SPS: the time is then that of its first return, read off the log).
		if sps := room.spsTime(clipSPS(t, step.clip)); before.IsZero() && !sps.IsZero() {
			took = append(took, sps.Sub(at))
		}
	}
	// A figure, not an assertion: grant → the new holder's SPS at the room (the clips
	// have a keyframe every second and the pion publishers ignore PLI).
	t.Logf("floor change → the room has the new holder's keyframe: %v", took)
	m := scrape(t, a)
	t.Logf("gateway's switch times:\n%s", grep(m, "cau_sip_video_switch_seconds_"))
	if !strings.Contains(m, "cau_sip_video_switch_seconds_count") {
		t.Errorf("no video switch counted")
	}
	room.hangup()
}

// TestRoomHearsTheMeetingButNotItself: two rooms and a browser-like publisher; each room
// sends a tone of its own. Each room hears the other room's tone and the publisher's
// beep, mixed in one stream, and never its own tone (mix-minus). The second room, whose
// own voice is silence, sees the first room's camera: it speaks all the time, so it is
// the dominant speaker of what the second room hears.
func TestRoomHearsTheMeetingButNotItself(t *testing.T) {
	testmedia.Need(t)
	const meeting = "thao-luan"
	a, _ := start(t)
	publishH264At(t, a, meeting, "ha-noi", testmedia.MakeH264Clip(t, 320, 240))
	room1 := dialRTPRoom(t, a.SIP().Addr(), meeting, "Phòng 1")
	room1.sendTone(700)
	room1.sendClip(testmedia.MakeH264Clip(t, 176, 144))
	room2 := dialRTPRoom(t, a.SIP().Addr(), meeting, "Phòng 2")
	room2.sendTone(2000)
	start := room2.audioSamples()
	testutil.Eventually(t, 30*time.Second, func() string {
		if room2.audioSamples()-start < 5*8000 {
			return "room 2 has not received 5 s of audio"
		}
		sizes, errs := lastSizes(t, room2)
		switch {
		case errs != "":
			return "room 2's video does not decode: " + errs
		case len(sizes) == 0 || sizes[len(sizes)-1] != "176x144":
			return fmt.Sprintf("room 2 shows %v, want room 1's camera (176x144), the dominant speaker", sizes)
		}
		return ""
	})
	const window = 4 * time.Second // two of the publisher's beeps
	for _, c := range []struct {
		name        string
		r           *rtpRoom
		own, others float64
	}{{"room 1", room1, 700, 2000}, {"room 2", room2, 2000, 700}} {
		own, other, beep := c.r.tonePower(c.own, window), c.r.tonePower(c.others, window), c.r.tonePower(1000, window)
		t.Logf("%s hears: its own tone %.4f, the other room's %.4f, the beep %.4f (shares of the power)", c.name, own, other, beep)
		if own > 0.01 {
			t.Errorf("%s hears its own tone (%.4f of the power)", c.name, own)
		}
		if other < 0.2 {
			t.Errorf("%s does not hear the other room (%.4f of the power)", c.name, other)
		}
		if beep < 0.01 {
			t.Errorf("%s does not hear the publisher's beep (%.4f of the power)", c.name, beep)
		}
	}
}

// TestSIPHoldResume: a room puts the call on hold by re-INVITE (a=sendonly): the gateway
// answers recvonly and sends it nothing; resumed (a=sendrecv), audio flows again and the
// video restarts with a keyframe that decodes.
func TestSIPHoldResume(t *testing.T) {
	testmedia.Need(t)
	const meeting = "giu-may"
	a, _ := start(t)
	clip := testmedia.MakeH264Clip(t, 320, 240)
	publishH264At(t, a, meeting, "ha-noi", clip)
	room := dialRTPRoom(t, a.SIP().Addr(), meeting, "Phòng họp")
	testutil.Eventually(t, 20*time.Second, func() string {
		if room.videoBytes() == 0 || room.audioSamples() < 8000 {
			return "the room receives no media"
		}
		return ""
	})
	if ans := room.reinvite("sendonly"); !strings.Contains(ans, "a=recvonly") || strings.Contains(ans, "a=sendrecv") {
		t.Fatalf("hold answered:\n%s", ans)
	}
	time.Sleep(300 * time.Millisecond) // what was in flight
	audio, video := room.audioSamples(), room.videoBytes()
	time.Sleep(1500 * time.Millisecond)
	if a2, v2 := room.audioSamples(), room.videoBytes(); a2 != audio || v2 != video {
		t.Errorf("on hold the room still receives: %d audio samples, %d video bytes", a2-audio, v2-video)
	}
	held := video
	if ans := room.reinvite("sendrecv"); !strings.Contains(ans, "a=sendrecv") {
		t.Fatalf("resume answered:\n%s", ans)
	}
	testutil.Eventually(t, 10*time.Second, func() string {
		if room.audioSamples() < audio+8000 || room.videoBytes() < held+5000 {
			return "the room receives nothing after resuming"
		}
		if sizes, errs := lastSizes(t, room); errs != "" || len(sizes) != 1 {
			return fmt.Sprintf("the video after resuming: sizes %v, errors %q", sizes, errs)
		}
		return ""
	})
	if n := a.SIP().Calls(); n != 1 {
		t.Errorf("%d calls, want the one held and resumed", n)
	}
}

// TestRoomInAMeetingOfSixPublishers: the bridge's offer to a room's subscriber connection
// has an m-section per stream (here 12); the gateway answers it, so the room receives
// the meeting (before, such an offer was refused as a publisher offer of more than 8
// m-sections, and the room got nothing).
func TestRoomInAMeetingOfSixPublishers(t *testing.T) {
	testmedia.Need(t)
	const meeting = "dong-nguoi"
	a, logs := start(t)
	clip := testmedia.MakeH264Clip(t, 160, 120)
	for _, site := range []string{"ha-noi", "hue", "da-nang", "can-tho", "hai-phong", "vinh"} {
		publishH264At(t, a, meeting, site, clip)
	}
	room := dialRTPRoom(t, a.SIP().Addr(), meeting, "Phòng họp")
	testutil.Eventually(t, 30*time.Second, func() string {
		if room.videoBytes() == 0 || room.audioSamples() < 8000 {
			return "the room receives nothing of the meeting"
		}
		return ""
	})
	if strings.Contains(logs.String(), "answering the bridge") {
		t.Errorf("the gateway failed to answer the bridge (%d times)", strings.Count(logs.String(), "answering the bridge"))
	}
}
