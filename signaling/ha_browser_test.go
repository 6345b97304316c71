package signaling_test

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/testbrowser"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/rooms"
)

// TestBrowserOfficialThroughAnotherNode is issue 16's Chromium case: an official opens
// the join page on one `cau signal` node while a room endpoint joined through another
// (three nodes, one Redis, two bridges). Whichever node owns the meeting, the other
// passes its session through: the page plays the room's camera with frames advancing and
// receives its audio, and the room receives the page's camera and microphone.
func TestBrowserOfficialThroughAnotherNode(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	testbrowser.ChromiumPath(t) // skips here, or fails under CI, without Chromium
	now := time.Now()
	const meeting = "hop-xa"
	c := startHACluster(t, rooms.Meeting{ID: meeting, Title: "Họp xã", ChairSite: "xa-a",
		Sites: []string{"xa-a", "xa-b"}, Start: now.Add(-time.Minute), End: now.Add(time.Hour),
		Mode: rooms.ModeDiscussion})
	room := c.join(t, 0, meeting, "xa-a", "ep-xa-a", auth.RoleRoom, newGapMeter())

	log := &testbrowser.Log{}
	dir := testbrowser.ArtifactDir(t)
	testbrowser.KeepLog(t, dir, log)
	b := testbrowser.MustStart(t, testbrowser.Options{Media: true, Log: log}, "official")[0]
	tok, err := c.keys.Sign(auth.Claims{Use: auth.UseJoin, Meeting: meeting, Site: "xa-b", Name: "Cán bộ xã B",
		Role: auth.RoleParticipant}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	page := c.nodes[1].url + "/join/" + url.PathEscape(meeting) + "?autojoin=1&token=" + url.QueryEscape(tok)
	if err := b.Open(page, "join", `window.cauState && window.cauState.joined`, 60*time.Second); err != nil {
		b.Shot(t, dir, "join")
		t.Fatal(err)
	}
	// The room's media is the Go client's synthetic stream (VP8-framed, not decodable
	// pictures): what the page must show is its video element for the room, and packets
	// of both kinds arriving in growing numbers.
	roomID := room.Me().ID
	hasTile := fmt.Sprintf(`window.cauState.remoteVideos().some((v) => v.participant === %q && v.source === 'camera')`, roomID)
	if err := b.WaitFor("the room's camera tile", hasTile, 60*time.Second); err != nil {
		b.Shot(t, dir, "no-video")
		seen, _ := testbrowser.Await[string](b, `JSON.stringify({participants: window.cauState.participants,
			videos: window.cauState.remoteVideos(), errors: window.cauState.errors})`, 5*time.Second)
		t.Fatalf("%v; the room is %s; the page has %s", err, roomID, seen)
	}
	for _, kind := range []string{"audio", "video"} {
		packets := fmt.Sprintf(`window.cauState.stats().then((s) => (s && s.subscriber ? s.subscriber.inbound : [])
			.filter((r) => r.kind === %q).reduce((n, r) => n + (r.packetsReceived || 0), 0))`, kind)
		first, err := testbrowser.Await[int](b, packets, 10*time.Second)
		if err != nil {
			t.Fatalf("%s stats: %v", kind, err)
		}
		if err := b.WaitFor("the room's "+kind+" arriving", fmt.Sprintf(`%s.then((n) => n > %d + 30)`, packets, first), 30*time.Second); err != nil {
			t.Error(err)
		}
	}
	// The room receives the official: the page's camera and microphone.
	var official protocol.Participant
	eventually(t, 30*time.Second, func() string {
		for _, p := range room.Participants() {
			if p.Site == "xa-b" {
				official = p
			}
		}
		if official.ID == "" {
			return "the room does not see the official"
		}
		for _, kind := range []string{"audio", "video"} {
			if s := room.Stream(official.Streams[protocol.SourceCamera], kind); s == nil || s.Packets.Load() < 30 {
				return "the room has not received 30 " + kind + " packets from the official's page"
			}
		}
		return ""
	})
	owner, _ := c.leaseOf(t, meeting)
	t.Logf("the room joined through %s and the page through %s; %s owns the meeting", c.nodes[0].url, c.nodes[1].url, owner)
}
