package app_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/internal/testbrowser"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/sfu/speaker"
)

// An official's join page (headless Chromium, no option: it leaves slots to the server)
// joins a meeting large enough for slots (the server's SlotsFrom set to 2 sites here; 24
// by default) with a grid of one video (VideoN 1) where two pion sites talk in turn. The page receives one
// video slot, which the bridge points at the talker: the tile that shows it is the
// talker's, named after it, and the other site's tile shows no video; after the speaker
// change the same slot's picture moves to the new talker's tile. What the page shows is
// checked against where the bridge points its slots.
func TestBrowserSlotsFollowTheSpeaker(t *testing.T) {
	s := newStageWith(t, true, func(c *app.Config) { c.Speaker = speaker.Params{VideoN: 1, AudioN: 1}; c.SlotsFrom = 2 })
	a := s.app
	t0 := time.Now()
	m := bookPhuocSon(t, a, "slots-test", t0.Add(2*time.Second), t0.Add(10*time.Minute), "1m")
	official := s.browsers(testbrowser.Options{}, "official")[0]
	if err := official.Open(s.joinURL(a.Keys(), m.ID, "qnam-psn-c02", "Cán bộ xã Phước Xuân", auth.RoleParticipant)+"&lang=vi",
		"join", `window.cauState && window.cauState.joined`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// The official listens: its own microphone's beep must not take the one grid place.
	if err := official.Click("mic-button"); err != nil {
		t.Fatal(err)
	}
	names := []string{"Xã Phước Công", "Xã Phước Chánh"}
	var talkers []*client.Client
	var synths []*client.Synth
	for i, site := range []string{"qnam-psn-c03", "qnam-psn-c04"} {
		tok, err := a.Keys().Sign(auth.Claims{Use: auth.UseJoin, Meeting: m.ID, Site: site, Name: names[i], Role: auth.RoleParticipant}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Dial(context.Background(), wsURL(a), tok, client.Options{Loopback: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		// Simulcast, as the join page publishes: the slot's layer is the bridge's choice.
		sy, err := c.PublishWith(context.Background(), client.PublishOptions{Levels: true, Simulcast: true})
		if err != nil {
			t.Fatal(err)
		}
		talkers, synths = append(talkers, c), append(synths, sy)
	}
	officialID := testbrowser.Eval[string](t, official, `window.cauState.selfId`)
	peer := a.Signaling().PeerOf(m.ID, officialID)

	// What the page shows of a participant: its tile's name, whether the tile plays a live,
	// unmuted video track (packets arrived on it), and the slots the page binds to it.
	type tile struct {
		Name  string   `json:"name"`
		Video bool     `json:"video"`
		Slots []string `json:"slots"`
	}
	show := func(id string) tile {
		return testbrowser.Eval[tile](t, official, `(() => {
			const t = document.querySelector('.tile[data-participant="`+id+`"]');
			const v = t && t.querySelector('video');
			const tracks = v && v.srcObject ? v.srcObject.getVideoTracks() : [];
			return { name: t ? t.querySelector('.name').textContent : '',
				video: tracks.some((x) => x.readyState === 'live' && !x.muted),
				slots: window.cauState.slotsOf('`+id+`') };
		})()`)
	}
	// onBridge is the video slot the bridge points at participant, "" if none.
	onBridge := func(id string) string {
		for _, s := range a.Signaling().Local().Agent().SlotsOf(peer) {
			if s.Kind == "video" && string(s.Participant) == id {
				return s.Stream
			}
		}
		return ""
	}
	speaks := func(i int) {
		t.Helper()
		synths[i].SetLoudness(100)
		synths[1-i].SetLoudness(0)
		other := talkers[1-i].Self.ID
		waitUntil(t, names[i]+"'s tile shows the video slot", 30*time.Second, func() string {
			id := talkers[i].Self.ID
			slot := onBridge(id)
			if slot == "" {
				return fmt.Sprintf("the bridge points no video slot at %s (slots %+v)", names[i], a.Signaling().Local().Agent().SlotsOf(peer))
			}
			got := show(id)
			if got.Name != names[i] || !got.Video || !slices.Contains(got.Slots, slot) {
				return fmt.Sprintf("%s's tile shows %+v, want its name and the live %s", names[i], got, slot)
			}
			if o := show(other); o.Video || slices.ContainsFunc(o.Slots, func(s string) bool { return strings.HasPrefix(s, "slot-v") }) {
				return fmt.Sprintf("the other site's tile still shows a video slot: %+v", o)
			}
			return ""
		})
	}
	speaks(0)
	official.Shot(t, s.dir, "first-talker")
	speaks(1)
	official.Shot(t, s.dir, "second-talker")
	talker := talkers[1].Self.ID
	slotOf := func() string {
		for _, l := range a.Signaling().Local().Agent().SlotLayersOf(peer) {
			if string(l.Key.Participant) == talker {
				return fmt.Sprintf("layer %d target %d paused %v", l.Layer, l.Target, l.Paused)
			}
		}
		return "no slot"
	}
	// The page's tile sizes drive the video slot (view-report.js → the bridge's slot caps):
	// the talker's tile hidden, its slot forwards nothing; shown again, it forwards again.
	tileStyle := func(display string) {
		testbrowser.Eval[bool](t, official, `(() => { document.querySelector('.tile[data-participant="`+talker+`"]').style.display = '`+display+`'; return true; })()`)
	}
	tileStyle("none")
	waitUntil(t, "the hidden tile's slot forwards nothing", 10*time.Second, func() string {
		if got := slotOf(); got != "layer -1 target -1 paused true" {
			return "the talker's slot: " + got
		}
		return ""
	})
	tileStyle("")
	waitUntil(t, "the tile's slot forwards again, within the tile's layer", 10*time.Second, func() string {
		c, ok := a.Signaling().Local().Agent().ViewOf(peer)[ids.StreamKey{Participant: ids.ParticipantID(talker), Source: protocol.SourceCamera}]
		for _, l := range a.Signaling().Local().Agent().SlotLayersOf(peer) {
			if string(l.Key.Participant) == talker && ok && !l.Paused && l.Layer >= 0 && l.Layer <= c {
				return ""
			}
		}
		return fmt.Sprintf("the talker's slot: %s, its tile's layer in the view %d (named %v)", slotOf(), c, ok)
	})

	// One renegotiation-free subscriber connection: the page's slots are AudioN + 2 audio
	// and VideoN video, whatever the meeting's size.
	if got := len(a.Signaling().Local().Agent().SlotsOf(peer)); got != 1+2+1 {
		t.Errorf("the official has %d slots, want 4", got)
	}
}
