package sipgw_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/testbrowser"
	"github.com/cau-project/cau/internal/testmedia"
	"github.com/cau-project/cau/internal/testutil"
)

// TestBrowserSeenByRoom: an official on the join page (headless Chromium, which offers
// VP8 first) is in a meeting when a room dials in. The room joins saying it decodes
// H.264 only, so the page publishes its camera again in H.264, and the room receives and
// decodes the official's camera; once the room hangs up, the page goes back to VP8.
func TestBrowserSeenByRoom(t *testing.T) {
	testbrowser.Require(t)
	testmedia.Need(t)
	const meeting = "quan-chuc"
	a, _ := start(t)
	log := &testbrowser.Log{}
	testbrowser.KeepLog(t, t.TempDir(), log)
	b, err := testbrowser.Start(t, testbrowser.Options{Name: "official", Media: true, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a.Keys().Sign(auth.Claims{Use: auth.UseJoin, Meeting: meeting, Site: "so-noi-vu", Name: "Sở Nội vụ",
		Role: auth.RoleParticipant}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	page := a.URL() + "/join/" + meeting + "?autojoin=1&token=" + url.QueryEscape(tok)
	if err := b.Open(page, "the page joined", "window.cauState && window.cauState.joined", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// Another site watches the official throughout: a camera nobody watches is paused at
	// the page (dynacast), and the page's codec is what this test reads.
	ws := strings.Replace(a.URL(), "http://", "ws://", 1) + "/ws"
	viewer, err := client.Dial(t.Context(), ws, token(t, a, meeting, "hue", "Huế"), client.Options{Loopback: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(viewer.Close)
	// The codecs the page's camera goes out in now: its layers whose packet counts grow
	// over half a second (a retired sender keeps its counts in the stats).
	type outbound struct {
		Kind        string `json:"kind"`
		SSRC        uint32 `json:"ssrc"`
		Codec       string `json:"codec"`
		PacketsSent int    `json:"packetsSent"`
	}
	sample := func() []outbound {
		stats, err := testbrowser.Await[struct {
			Publisher struct {
				Outbound []outbound `json:"outbound"`
			} `json:"publisher"`
		}](b, "window.cauState.stats()", 10*time.Second)
		if err != nil {
			t.Fatalf("page stats: %v", err)
		}
		return stats.Publisher.Outbound
	}
	sending := func() map[string]bool {
		before := map[uint32]int{}
		for _, o := range sample() {
			before[o.SSRC] = o.PacketsSent
		}
		time.Sleep(500 * time.Millisecond)
		out := map[string]bool{}
		for _, o := range sample() {
			if o.Kind == "video" && o.PacketsSent > before[o.SSRC] {
				out[o.Codec] = true
			}
		}
		return out
	}
	testutil.Eventually(t, 20*time.Second, func() string {
		if s := sending(); !s["video/VP8"] {
			return fmt.Sprintf("the page sends %v, want VP8 before a room joins", s)
		}
		return ""
	})

	room := dialRTPRoom(t, a.SIP().Addr(), meeting, "Phòng họp UBND")
	answered := time.Now()
	var took time.Duration
	testutil.Eventually(t, 30*time.Second, func() string {
		if s := sending(); !s["video/H264"] || s["video/VP8"] {
			return fmt.Sprintf("the page sends %v, want H.264 only while the room is in", s)
		}
		if room.videoBytes() < 20000 {
			return "the room has received little video"
		}
		if took == 0 {
			took = time.Since(answered)
		}
		sizes, errs := lastSizes(t, room)
		switch {
		case errs != "":
			return "the room's video does not decode: " + errs
		case len(sizes) == 0:
			return "the room decoded no picture"
		}
		return ""
	})
	sizes, _ := lastSizes(t, room)
	t.Logf("room answered → it receives the official's H.264 after %v; sizes decoded %v", took, sizes)

	room.hangup()
	testutil.Eventually(t, 20*time.Second, func() string {
		if s := sending(); !s["video/VP8"] || s["video/H264"] {
			return fmt.Sprintf("the page sends %v, want VP8 only once the room left", s)
		}
		return ""
	})
}
