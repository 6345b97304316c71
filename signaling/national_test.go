package signaling_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/sfu/speaker"
	"github.com/cau-project/cau/signaling"
)

// The national meeting of issue 10, simulated on one machine: a bridge at central (in
// signaling's process), one per province (3) and one commune bridge per province, every
// endpoint a real pion client at a commune site of its own. Sites are named by their path
// in the tree: "nat-A" is province A, "nat-A-1" a group of its communes with a bridge,
// "nat-A-2" one without (its communes are placed on the province bridge), and
// "nat-A-1-17" a commune.
var natBridges = []string{"nat-A", "nat-A-1", "nat-B", "nat-B-1", "nat-C", "nat-C-1"}

// natGroups are the commune groups endpoints are spread over, in turn.
var natGroups = []string{"nat-A-1", "nat-A-2", "nat-B-1", "nat-B-2", "nat-C-1", "nat-C-2"}

// natAncestry is the ancestry of a site of the national tree: its path's prefixes, then
// central.
func natAncestry(site string) []string {
	parts := strings.Split(strings.TrimPrefix(site, "nat-"), "-")
	var out []string
	for i := len(parts) - 1; i >= 1; i-- {
		out = append(out, "nat-"+strings.Join(parts[:i], "-"))
	}
	return append(out, "central")
}

// natParams is the meeting's Last-N: 4 video tiles, 2 audio slots (small, so that every
// link has several times more sources beyond it than it may carry).
var natParams = speaker.Params{VideoN: 4, AudioN: 2}

// natPinned are the meeting's pinned participants: the chair (alone at the chair site)
// and the one commune site the chair pins. A discussion meeting has no floor holder (the
// floor grants nothing in discussion mode); in training mode each site holding the floor
// adds its participants here.
const natPinned = 2

// natBound is what one relay link may carry in each direction, whatever the number of
// sites beyond it. Each bridge's selector forwards, for all its subscribers and links
// at once, the video of at most VideoN sources (the pinned among them) and the audio of
// the pinned and of the AudioN loudest:
//
//	streams per link and direction ≤ VideoN + AudioN + pinned (+ screen shares + microphones
//	without levels, none here)
//
// with pinned = the participants of the chair site, of the sites holding the floor and of
// the sites the chair pinned.
var natBound = natParams.VideoN + natParams.AudioN + natPinned

// natLink is one direction of a relay link: the bridge that sends and the one it faces.
type natLink struct{ from, to string }

// natFigures are what the bridges report on each direction of each relay link while the
// meeting holds still.
type natFigures struct {
	carried    map[natLink]int     // streams forwarded, the most seen in any sample
	subscribed map[natLink]int     // streams negotiated on it: what would cross all to all
	bps        map[natLink]float64 // bits per second sent, the mean over the samples
}

// TestNationalMeeting is issue 10's simulated national meeting: 1 central, 3 province
// and 3 commune bridges, a discussion meeting of 40 and then of 300 endpoints. The chair
// at central, a pinned commune and the other publishing communes send a camera at
// ≈ 90 kbit/s (5 fps) and a microphone with RFC 6464 levels; three communes talk, the
// others are silent; the rest of the endpoints only watch. Every endpoint receives the
// chair. Every relay link, in each direction, carries at most natBound streams at both
// sizes, counted by the bridges themselves (their relay counters: the streams subscribed
// on the link less those held back now), while the streams subscribed on the links (what
// all-to-all forwarding would send) grow with the meeting.
//
// The endpoints that publish are a fifth of the meeting (12 of 40, 60 of 300): each
// endpoint subscribes to every published stream (discussion mode), so 300 publishers
// would negotiate 598 tracks on each of 300 subscriber connections, which a 2-core
// machine cannot set up in a test. The sources beyond a central ↔ province link still
// outnumber its bound 5 to 1 at 300 endpoints.
//
// make national runs it (not make test: 340 endpoints take minutes). On the shared
// development box (load 20–30) it did not pass at any size from 24 endpoints up: the
// bridges' control sockets time out writing to signaling (5 s) and the bridges are
// declared down; an endpoint moved to central then waits for its subscriber answer for
// ever ("subscriber answer late"). See the branch h/national's report.
func TestNationalMeeting(t *testing.T) {
	if os.Getenv("CAU_NATIONAL") == "" && os.Getenv("CAU_NATIONAL_ENDPOINTS") == "" {
		t.Skip("340 endpoints in two meetings: make national (CAU_NATIONAL=1) runs it")
	}
	if raceEnabled {
		t.Skip("300 endpoints: run without the race detector (make national does)")
	}
	sizes := [][2]int{{40, 12}, {300, 60}}
	if v := os.Getenv("CAU_NATIONAL_ENDPOINTS"); v != "" { // a single size, for figures
		n, err := strconv.Atoi(v)
		if err != nil || n < 20 {
			t.Fatalf("CAU_NATIONAL_ENDPOINTS=%q: want a number ≥ 20", v)
		}
		sizes = [][2]int{{n, max(n/5, 12)}}
	}
	var runs []natFigures
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%d", sz[0]), func(t *testing.T) {
			runs = append(runs, nationalMeeting(t, sz[0], sz[1]))
		})
	}
	if t.Failed() || len(runs) < 2 {
		return
	}
	// The same bound at both sizes, while what all-to-all would send grew.
	small, large := runs[0], runs[1]
	grew := 0
	for l, n := range large.subscribed {
		if n > small.subscribed[l] {
			grew++
		}
	}
	if grew == 0 {
		t.Errorf("no link is subscribed to more streams at %d endpoints than at %d: the sizes do not differ", sizes[1][0], sizes[0][0])
	}
}

// nationalMeeting runs one meeting of n endpoints, publishers of which publish, and
// returns the relay links' figures.
func nationalMeeting(t *testing.T, n, publishers int) natFigures {
	start := time.Now()
	// Hundreds of endpoints setting up at once can starve a bridge's control socket past
	// the 500 ms that declares a bridge down: this test is not about failover.
	c := startCascadeConfig(t, natParams, func(c *signaling.Config) { c.BridgeTimeout = 3 * time.Second }, natBridges...)
	ctx := context.Background()
	const meeting = "national"
	light := client.PublishOptions{FPS: 5, PacketsPerFrame: 2, PayloadBytes: 1100, Levels: true}

	chair := c.joinAs(t, meeting, "central", "chair", auth.RoleChair)
	if _, err := chair.PublishWith(ctx, light); err != nil {
		t.Fatal(err)
	}
	// The publishers first (each publication renegotiates every subscriber), then the
	// watchers, a few at a time.
	site := func(i int) string { return fmt.Sprintf("%s-%d", natGroups[i%len(natGroups)], i) }
	var synths []*client.Synth
	var pubs []*client.Client
	for i := 1; i < publishers; i++ {
		e := c.join(t, meeting, site(i), fmt.Sprintf("pub %03d", i))
		s, err := e.PublishWith(ctx, light)
		if err != nil {
			t.Fatal(err)
		}
		pubs, synths = append(pubs, e), append(synths, s)
	}
	// The relay links are set up while the publishers alone are in (every bridge has
	// one): the watchers' joins then change no link's forwarding.
	eventually(t, 60*time.Second, func() string { return receiveChair(chair, pubs) })
	watchers := joinMany(t, c, meeting, publishers, n, site)
	all := append(slices.Clone(pubs), watchers...)
	joined := time.Since(start)

	// The chair pins a commune of province A; three communes talk: two in province A (one
	// under its commune bridge, one on the province bridge) and one in province B.
	if err := chair.Pin(site(6), true); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 2, 3} {
		synths[i-1].SetLoudness(90)
	}
	eventually(t, 90*time.Second, func() string { return receiveChair(chair, all) })
	flowing := time.Since(start)

	// Every relay link up (a link that failed under load is set up again), then hold still
	// for the heartbeats (1 s) and the selectors (a relayed video that stops arriving gives
	// up its place after 1 s), then sample for 4 s.
	eventually(t, 30*time.Second, func() string {
		n := 0
		for _, stats := range c.sig.RelayStats() {
			n += len(stats)
		}
		if n < 2*len(natBridges) {
			return fmt.Sprintf("%d relay link directions reported, want %d (every bridge has endpoints)", n, 2*len(natBridges))
		}
		return ""
	})
	time.Sleep(3 * time.Second)
	f := natFigures{carried: map[natLink]int{}, subscribed: map[natLink]int{}, bps: map[natLink]float64{}}
	const samples = 8
	for k := 0; k < samples; k++ {
		for on, stats := range c.sig.RelayStats() {
			for _, st := range stats {
				l := natLink{on, string(st.Peer.Relay.Bridge)}
				f.carried[l] = max(f.carried[l], st.StreamsSent-st.StreamsPaused)
				f.subscribed[l] = max(f.subscribed[l], st.StreamsSent)
				f.bps[l] += st.BitrateBps / samples
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	var lines []string
	for _, l := range slices.SortedFunc(maps.Keys(f.carried), func(a, b natLink) int {
		return strings.Compare(a.from+">"+a.to, b.from+">"+b.to)
	}) {
		lines = append(lines, fmt.Sprintf("%s→%s carries %d of %d streams, %.0f kbit/s", l.from, l.to, f.carried[l],
			f.subscribed[l], f.bps[l]/1e3))
		if f.carried[l] > natBound {
			t.Errorf("relay %s→%s carries %d streams, want at most VideoN + AudioN + pinned = %d + %d + %d = %d",
				l.from, l.to, f.carried[l], natParams.VideoN, natParams.AudioN, natPinned, natBound)
		}
	}
	t.Logf("%d endpoints (%d publishing), joined in %v, all receiving the chair after %v; per relay link and direction:\n  %s",
		n, publishers, joined.Round(time.Millisecond), flowing.Round(time.Millisecond), strings.Join(lines, "\n  "))
	return f
}

// joinMany joins endpoints from..to-1 (watchers: they publish nothing), at most 4 at once.
func joinMany(t *testing.T, c *cascade, meeting string, from, to int, site func(int) string) []*client.Client {
	t.Helper()
	out := make([]*client.Client, to-from)
	errs := make([]error, to-from)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := from; i < to; i++ {
		tok := c.token(t, meeting, site(i), fmt.Sprintf("watch %03d", i))
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// A join can fail while its bridge's control socket is starved (the bridge is
			// then declared down and registers again): try again, as a site would.
			for try := 0; try < 3; try++ {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				out[i-from], errs[i-from] = client.Dial(ctx, c.ws, tok, client.Options{Loopback: true, Logger: logger()})
				cancel()
				if errs[i-from] == nil {
					return
				}
				time.Sleep(time.Second)
			}
		}()
	}
	wg.Wait()
	for i, e := range out {
		if e != nil {
			t.Cleanup(e.Close)
		}
		if errs[i] != nil {
			t.Fatalf("join %s: %v", site(from+i), errs[i])
		}
	}
	return out
}

// receiveChair says which of eps do not receive the chair's audio and video yet, with the
// packets of each they have (-1: no track).
func receiveChair(chair *client.Client, eps []*client.Client) string {
	var missing []string
	st := chair.Self.Streams[protocol.SourceCamera]
	for _, e := range eps {
		if receivesFrom(e, chair, 20) == "" {
			continue
		}
		var a, v int64 = -1, -1
		if x := e.Stream(st, "audio"); x != nil {
			a = x.Packets.Load()
		}
		if x := e.Stream(st, "video"); x != nil {
			v = x.Packets.Load()
		}
		missing = append(missing, fmt.Sprintf("%s@%s(a%d,v%d)", e.Self.Name, e.Self.Site, a, v))
	}
	if len(missing) > 0 {
		return fmt.Sprintf("%d endpoints do not receive the chair: %v", len(missing), missing)
	}
	return ""
}
