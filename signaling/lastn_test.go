package signaling_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/sfu/speaker"
)

// Six sites below the province bridge publish into one discussion meeting that a site at
// central watches, with Last-N of 3 videos and 2 audios. The relay link from the province
// up carries the video of at most 3 sites and the audio of those speaking, whatever the
// number of sites; when a site outside the grid speaks, its audio and video cross the
// link and reach the watcher.
func TestLastNBoundsRelayLink(t *testing.T) {
	p := speaker.Params{VideoN: 3, AudioN: 2}
	c := startCascadeWith(t, p, "prov")
	const sites = 6
	watcher := c.join(t, "m-lastn", "central", "watcher")
	var pubs []*client.Client
	var synths []*client.Synth
	for i := 0; i < sites; i++ {
		e, s := c.talker(t, "m-lastn", "dist2", fmt.Sprintf("site %02d", i))
		pubs, synths = append(pubs, e), append(synths, s)
	}
	carried := func() (int, string) {
		st, ok := c.relayStat("br-prov", "local")
		if !ok {
			return 0, "no relay link from the province up"
		}
		if st.StreamsSent != 2*sites {
			return 0, fmt.Sprintf("the link is subscribed to %d streams, want %d", st.StreamsSent, 2*sites)
		}
		return st.StreamsSent - st.StreamsPaused, ""
	}
	// Nobody speaks: the grid's videos cross, no audio.
	eventually(t, 30*time.Second, func() string {
		n, why := carried()
		if why == "" && n != p.VideoN {
			why = fmt.Sprintf("the link carries %d streams, want the %d videos of the grid", n, p.VideoN)
		}
		return why
	})
	videos := func() int {
		n := 0
		for _, e := range pubs {
			if s := watcher.Stream(e.Self.Streams[protocol.SourceCamera], "video"); s != nil && s.Packets.Load() > 0 {
				n++
			}
		}
		return n
	}
	eventually(t, 10*time.Second, func() string {
		if n := videos(); n != p.VideoN {
			var got []string
			for _, e := range pubs {
				s := watcher.Stream(e.Self.Streams[protocol.SourceCamera], "video")
				a := watcher.Stream(e.Self.Streams[protocol.SourceCamera], "audio")
				g := fmt.Sprintf("%s:", e.Self.Name)
				if s != nil {
					g += fmt.Sprint("v", s.Packets.Load())
				}
				if a != nil {
					g += fmt.Sprint("a", a.Packets.Load())
				}
				got = append(got, g)
			}
			st, _ := c.relayStat("br-prov", "local")
			return fmt.Sprintf("the watcher receives %d videos, want %d: %v; link %+v", n, p.VideoN, got, st)
		}
		return ""
	})

	// The last site, outside the grid, speaks: its audio and video reach the watcher; the
	// link still carries at most VideoN videos and AudioN audios.
	speakerSite := pubs[sites-1]
	synths[sites-1].SetLoudness(90)
	start := time.Now()
	stream := speakerSite.Self.Streams[protocol.SourceCamera]
	var heard time.Duration
	eventually(t, 10*time.Second, func() string {
		a := watcher.Stream(stream, "audio")
		if a == nil || a.Packets.Load() == 0 {
			return "the watcher does not hear the speaker"
		}
		if heard == 0 {
			heard = time.Since(start)
		}
		if v := watcher.Stream(stream, "video"); v == nil || v.Packets.Load() == 0 {
			return "the watcher does not see the speaker"
		}
		return ""
	})
	seen := time.Since(start)
	for i := 0; i < 10; i++ {
		n, why := carried()
		if why != "" {
			t.Fatal(why)
		}
		if n > p.VideoN+p.AudioN {
			t.Fatalf("the link carries %d streams, want at most %d videos + %d audios", n, p.VideoN, p.AudioN)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := watcher.Stream(stream, "video").FirstKeyframe.Load(); got != 1 {
		t.Errorf("the speaker's video did not start on a keyframe across the link (%d)", got)
	}
	t.Logf("speaker heard after %v, seen after %v (two bridges, one relay link)", heard, seen)
}
