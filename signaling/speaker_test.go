package signaling_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/sfu/speaker"
)

// Three sites below the province bridge (a `cau bridge` over the control socket) publish
// with audio levels; a site at central watches. The watcher is told who the dominant
// speaker is and which sites are in the grid (Last-N of 2) as the talkers change; the
// chair's pin puts a site that is out of the grid back in it, on both bridges; the
// watcher's own pin marks the site's camera first on its own link.
func TestSpeakerEventsAndPins(t *testing.T) {
	p := speaker.Params{VideoN: 2, AudioN: 2}
	c := startCascadeWith(t, p, "prov")
	const meeting = "m-speaker"
	watcher := c.join(t, meeting, "central", "watcher")
	sites := []string{"dist", "dist2", "comm2"}
	var pubs []*client.Client
	var synths []*client.Synth
	for _, site := range sites {
		e, s := c.talker(t, meeting, site, "site "+site)
		pubs, synths = append(pubs, e), append(synths, s)
	}
	told := func(want func(protocol.Speaker) string) {
		t.Helper()
		eventually(t, 15*time.Second, func() string {
			got, n := watcher.Speaker()
			if n == 0 {
				return "no speaker message yet"
			}
			if why := want(got); why != "" {
				return fmt.Sprintf("%s (told %+v)", why, got)
			}
			return ""
		})
	}
	dominant := func(i int) func(protocol.Speaker) string {
		return func(s protocol.Speaker) string {
			if s.Dominant != pubs[i].Self.ID || s.Site != sites[i] {
				return fmt.Sprintf("dominant %q at %q, want %s at %s", s.Dominant, s.Site, pubs[i].Self.ID, sites[i])
			}
			if !slices.Contains(s.LastN, pubs[i].Self.ID) {
				return "the dominant speaker is not in the grid"
			}
			if len(s.LastN) > p.VideoN {
				return fmt.Sprintf("%d sites in the grid, want at most %d", len(s.LastN), p.VideoN)
			}
			return ""
		}
	}
	// The third site, outside the first grid, speaks: it becomes dominant and enters it.
	synths[2].SetLoudness(90)
	told(dominant(2))
	// It stops and the first site speaks: the dominant speaker follows.
	synths[2].SetLoudness(0)
	synths[0].SetLoudness(90)
	told(dominant(0))
	_, before := watcher.Speaker()
	time.Sleep(time.Second)
	if _, n := watcher.Speaker(); n-before > 2 {
		t.Errorf("%d speaker messages in a second of one steady talker: the choice flaps", n-before)
	}

	// The grid is now the two who spoke; the chair pins the second site, which is out.
	s, _ := watcher.Speaker()
	if slices.Contains(s.LastN, pubs[1].Self.ID) {
		t.Fatalf("the second site is in the grid before the pin: %+v", s)
	}
	chair := c.joinAs(t, meeting, "central", "chair", auth.RoleChair)
	if err := chair.Pin("dist2", true); err != nil {
		t.Fatal(err)
	}
	told(func(s protocol.Speaker) string {
		if !slices.Equal(s.Pinned, []string{"dist2"}) {
			return "the pin is not announced"
		}
		if !slices.Contains(s.LastN, pubs[1].Self.ID) {
			return "the pinned site is not in the grid"
		}
		return ""
	})
	// It reaches the watcher through both bridges.
	eventually(t, 10*time.Second, func() string {
		v := watcher.Stream(pubs[1].Self.Streams[protocol.SourceCamera], "video")
		if v == nil || v.Packets.Load() == 0 {
			return "the watcher does not receive the pinned site's camera"
		}
		return ""
	})

	// The watcher pins the third site for itself: its camera comes first on the watcher's
	// link (the local bridge's subscription is marked), and only the watcher is told.
	if err := watcher.Pin("comm2", true); err != nil {
		t.Fatal(err)
	}
	told(func(s protocol.Speaker) string {
		if !slices.Equal(s.Mine, []string{"comm2"}) {
			return "the watcher's own pin is not announced to it"
		}
		return ""
	})
	peer := c.sig.PeerOf(meeting, watcher.Self.ID)
	eventually(t, 5*time.Second, func() string {
		got := c.sig.Local().Agent().PinnedFor(peer)
		if !slices.ContainsFunc(got, func(k ids.StreamKey) bool {
			return string(k.Participant) == pubs[2].Self.ID && k.Source == ids.SourceCamera
		}) {
			return fmt.Sprintf("the watcher's link has pinned %v, want the third site's camera", got)
		}
		return ""
	})
	if s, _ := chair.Speaker(); len(s.Mine) != 0 {
		t.Errorf("the chair was told of the watcher's pin: %+v", s)
	}
	// Unpinning ends it.
	if err := watcher.Pin("comm2", false); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() string {
		if got := c.sig.Local().Agent().PinnedFor(peer); len(got) != 0 {
			return fmt.Sprintf("still pinned after the unpin: %v", got)
		}
		return ""
	})
}
