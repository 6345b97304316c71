package signaling_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/sfu/speaker"
)

// TestSlotsOverTheCascade: a site at the province (a `cau bridge` over the control socket)
// joins with slots before anyone publishes. The first publisher gives it its slots, 4
// audio (AudioN 2 + the chair and the floor holder) and 2 video (VideoN), in one offer;
// four more publishers, at central (relayed to the province) and at the province, join
// without renegotiating it. The slot map names each talker in an audio slot as the
// talkers change, and that slot carries audio; the video slots carry cameras, from a
// keyframe. The client counts each slot's packets as those of the participant the map
// names (what the load tester reads).
func TestSlotsOverTheCascade(t *testing.T) {
	p := speaker.Params{VideoN: 2, AudioN: 2}
	c := startCascadeWith(t, p, "prov")
	const meeting = "m-slots"
	dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	watcher, err := client.Dial(dctx, c.ws, c.token(t, meeting, "prov", "watcher"),
		client.Options{Loopback: true, Logger: logger(), Slots: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(watcher.Close)

	sites := []string{"central", "prov", "dist", "dist2", "comm2"}
	var pubs []*client.Client
	var synths []*client.Synth
	publish := func(i int) {
		e, s := c.talker(t, meeting, sites[i], "site "+sites[i])
		pubs, synths = append(pubs, e), append(synths, s)
	}
	publish(0)
	const sections = 4 + 2
	eventually(t, 20*time.Second, func() string {
		if got := watcher.ReceiveSections(); got != sections {
			return fmt.Sprintf("the slot watcher negotiated %d m-sections, want %d", got, sections)
		}
		return ""
	})
	offers := watcher.Offers()
	for i := 1; i < len(sites); i++ {
		publish(i)
	}

	// inSlot waits until the slot map puts pub's source of kind in a slot that carries it.
	inSlot := func(when string, pub *client.Client, kind string) {
		t.Helper()
		var before int64 = -1
		var slot string
		eventually(t, 20*time.Second, func() string {
			m, _ := watcher.Slots()
			cur := ""
			for stream, s := range m {
				if s.Kind == kind && string(s.Participant) == pub.Self.ID {
					cur = stream
				}
			}
			if cur == "" {
				return fmt.Sprintf("%s: no %s slot carries %s (map %v)", when, kind, pub.Self.Name, m)
			}
			st := watcher.Stream(cur, kind)
			if st == nil {
				return fmt.Sprintf("%s: nothing received on %s", when, cur)
			}
			if cur != slot {
				slot, before = cur, st.Packets.Load()
				return fmt.Sprintf("%s: %s's %s just mapped to %s", when, pub.Self.Name, kind, cur)
			}
			if st.Packets.Load() < before+5 {
				return fmt.Sprintf("%s: %s carries no packets", when, cur)
			}
			// The client counts them as the participant's, as a track of its own would be.
			if own := watcher.Stream(pub.Self.Streams[protocol.SourceCamera], kind); own == nil || own.Packets.Load() == 0 {
				return fmt.Sprintf("%s: the client does not count %s's packets as %s's", when, cur, pub.Self.Name)
			}
			return ""
		})
	}
	synths[3].SetLoudness(90)
	inSlot("first talker", pubs[3], "audio")
	inSlot("first talker's camera", pubs[3], "video")
	synths[3].SetLoudness(0)
	synths[1].SetLoudness(90)
	inSlot("second talker", pubs[1], "audio")
	inSlot("second talker's camera", pubs[1], "video")

	if got := watcher.Offers(); got != offers {
		t.Errorf("the slot watcher got %d offers after its slots were negotiated: publishers joining renegotiated it", got-offers)
	}
	if got := watcher.ReceiveSections(); got != sections {
		t.Errorf("the slot watcher has %d m-sections, want %d", got, sections)
	}
	for _, k := range []string{"slot-v0", "slot-v1"} {
		if v := watcher.Stream(k, "video"); v != nil && v.FirstKeyframe.Load() != 1 {
			t.Errorf("video slot %s did not start at a keyframe", k)
		}
	}
	_, maps := watcher.Slots()
	if maps < 2 {
		t.Errorf("%d slot maps received, want one per change", maps)
	}
}
