package relayplan_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/relayplan"
	"github.com/cau-project/cau/sfu/speaker"
)

// BenchmarkMeetingLinks is issue 10's benchmark of what each relay link carries in a
// discussion meeting (every site publishes a camera and a microphone, every site receives
// every other site), forwarding all to all against Last-N. It drives the allocation code
// itself rather than a formula: relayplan.Compute routes every stream over the bridge
// tree (what all to all sends on each link), and one speaker.Selector per bridge — the
// selection package sfu's Selector runs every 50 ms — chooses, from RFC 6464 loudness
// the sites send (3 talk, the rest are silent), what each bridge forwards; a relayed
// source reaches a bridge only while the bridge before it forwards it, and a relayed
// video only while the bridge beyond needs it (sfu/need.go), as on real links. Package
// sfu's wrapper is not run (its gates need real tracks): simulate below is its update
// loop (sfu.Selector.update and noteVideo), over the same selector. It fails if a link
// carries more than the bound of docs/cascade.md.
//
// Two meetings: a province of 258 sites (Gia Lai: the province hall and 20 departments
// on the province bridge, 17 district bridges with 220 communes), and a national meeting
// of 3,367 sites (central, 34 province bridges, 98 communes per province under 10 commune
// bridges each). Bytes are at 500 kbit/s per video (a 360p layer) and 40 kbit/s per audio
// (Opus with its RTP, UDP and IP headers); they are the stream counts times those rates.
//
//	go test -run '^$' -bench MeetingLinks -benchtime 1x -v ./relayplan
func BenchmarkMeetingLinks(b *testing.B) {
	for _, m := range []*simTree{provinceTree(), nationalTree()} {
		b.Run(m.name, func(b *testing.B) {
			for range b.N {
				r := simulate(m, speaker.DefaultParams(), 4*time.Second)
				for _, class := range r.classes {
					b.Logf("%-28s all-to-all %5d streams %8.1f Mbit/s   Last-N %2d streams (%d video, %d audio) %5.2f Mbit/s",
						class.name, class.all, class.allMbps(), class.lastN, class.video, class.audio, class.lastNMbps())
					b.ReportMetric(float64(class.all), "streams-all-"+class.short)
					b.ReportMetric(float64(class.lastN), "streams-lastN-"+class.short)
					if class.lastN > r.bound {
						b.Errorf("%s: a link carries %d streams under Last-N, want at most %d", class.name, class.lastN, r.bound)
					}
				}
				b.Logf("sites %d, bridges %d, relay link directions %d; Last-N bound per link and direction: VideoN + AudioN + pinned = %d",
					len(m.sites), len(m.parent)+1, len(r.links), r.bound)
			}
		})
	}
}

const (
	simVideoKbps = 500
	simAudioKbps = 40
	simMeeting   = ids.MeetingID("sim")
)

// simTree is a meeting's bridge tree and its sites (one participant each).
type simTree struct {
	name   string
	parent map[ids.BridgeID]ids.BridgeID
	sites  []simSite
	// class names the link between a bridge and its parent, for the report.
	class func(child ids.BridgeID) string
}

type simSite struct {
	p      ids.ParticipantID
	bridge ids.BridgeID
}

func (m *simTree) add(p string, b ids.BridgeID) {
	m.sites = append(m.sites, simSite{ids.ParticipantID(p), b})
}

// provinceTree is Gia Lai's 258 sites (docs/benchmarks.md; DOMAIN.md's reading of the
// press figure: the province hall, 20 departments, 17 districts, 220 communes).
func provinceTree() *simTree {
	m := &simTree{name: "province-258", parent: map[ids.BridgeID]ids.BridgeID{}}
	for i := range 21 {
		m.add(fmt.Sprintf("prov-%02d", i), "prov")
	}
	for d := range 17 {
		br := ids.BridgeID(fmt.Sprintf("dist-%02d", d))
		m.parent[br] = "prov"
		m.add(fmt.Sprintf("dist-%02d", d), br)
	}
	for c := range 220 {
		m.add(fmt.Sprintf("comm-%03d", c), ids.BridgeID(fmt.Sprintf("dist-%02d", c%17)))
	}
	m.class = func(ids.BridgeID) string { return "province ↔ district bridge" }
	return m
}

// nationalTree is 1 central site, 34 provinces and 98 communes per province (3,332; the
// country has 3,321 since July 2025), the communes under 10 commune bridges a province.
func nationalTree() *simTree {
	m := &simTree{name: "national-3367", parent: map[ids.BridgeID]ids.BridgeID{}}
	m.add("central", "central")
	for p := range 34 {
		prov := ids.BridgeID(fmt.Sprintf("p%02d", p))
		m.parent[prov] = "central"
		m.add(string(prov), prov)
		for g := range 10 {
			m.parent[ids.BridgeID(fmt.Sprintf("p%02d-b%d", p, g))] = prov
		}
		for c := range 98 {
			m.add(fmt.Sprintf("p%02d-c%02d", p, c), ids.BridgeID(fmt.Sprintf("p%02d-b%d", p, c%10)))
		}
	}
	m.class = func(child ids.BridgeID) string {
		if strings.Contains(string(child), "-b") {
			return "province ↔ commune bridge"
		}
		return "central ↔ province"
	}
	return m
}

// simLink is one direction of a relay link.
type simLink struct{ from, to ids.BridgeID }

// simClass is the report for one class of links (both directions): the most streams any
// link of the class carries in one direction.
type simClass struct {
	name, short         string
	all                 int // all to all
	lastN, video, audio int // Last-N, the most in any tick of the measured part
}

func (c simClass) allMbps() float64 { return float64(c.all/2) * (simVideoKbps + simAudioKbps) / 1e3 }
func (c simClass) lastNMbps() float64 {
	return (float64(c.video)*simVideoKbps + float64(c.audio)*simAudioKbps) / 1e3
}

type simResult struct {
	links   map[simLink][]int // the sources routed over each link direction
	classes []simClass
	bound   int
}

// simulate runs the meeting for d in 50 ms ticks and reports, per class of link, what
// all to all routes and the most Last-N lets cross in any tick after the first second.
func simulate(m *simTree, p speaker.Params, d time.Duration) simResult {
	const tick = 50 * time.Millisecond
	n := len(m.sites)
	bridges := []ids.BridgeID{}
	bridgeIdx := map[ids.BridgeID]int{}
	addBridge := func(b ids.BridgeID) {
		if _, ok := bridgeIdx[b]; !ok {
			bridgeIdx[b] = len(bridges)
			bridges = append(bridges, b)
		}
	}
	for c, par := range m.parent {
		addBridge(c)
		addBridge(par)
	}
	nb := len(bridges)

	// All to all: the relay forwards of every stream, origin bridge by origin bridge (a
	// single plan of every subscriber times every stream would hold millions of entries).
	subs := make([]relayplan.Subscriber, n)
	byOrigin := map[ids.BridgeID][]relayplan.Stream{}
	srcIdx := map[ids.ParticipantID]int{}
	for i, s := range m.sites {
		subs[i] = relayplan.Subscriber{Participant: s.p, Bridge: s.bridge, Peer: ids.ForEndpoint(s.p, 1)}
		key := ids.StreamKey{Participant: s.p, Source: ids.SourceCamera}
		byOrigin[s.bridge] = append(byOrigin[s.bridge], relayplan.Stream{Key: key, Origin: s.bridge, StreamID: key.String()})
		srcIdx[s.p] = i
	}
	links := map[simLink][]int{}
	from := make([][]int32, nb) // from[x][s]: the bridge s reaches x from; -1 local or none
	for x := range from {
		from[x] = make([]int32, n)
		for s := range from[x] {
			from[x][s] = -1
		}
	}
	for _, streams := range byOrigin {
		plan := relayplan.Compute(relayplan.Input{Meeting: simMeeting, Subscribers: subs, Streams: streams, Parent: m.parent})
		for f := range plan.Forwards {
			if !f.Peer.IsRelay() {
				continue
			}
			l := simLink{f.Bridge, f.Peer.Relay.Bridge}
			s := srcIdx[f.Key.Participant]
			links[l] = append(links[l], s)
			from[bridgeIdx[l.to]][s] = int32(bridgeIdx[l.from])
		}
	}

	// Last-N: one selector per bridge over every source it holds.
	pinned := []int{0, n / 2} // the chair (the first site) and a site the chair pinned
	talkers := []int{n / 3, n/3 + n/17 + 1, 2*n/3 + 5}
	isPinned := make([]bool, n)
	for _, s := range pinned {
		isPinned[s] = true
	}
	loud := make([]float64, n)
	for _, t := range talkers {
		loud[t] = 90
	}
	home := make([]int, n)
	for s, site := range m.sites {
		home[s] = bridgeIdx[site.bridge]
	}
	sels := make([]*speaker.Selector, nb)
	hasVideo := make([][]bool, nb)
	quiet := make([][]time.Duration, nb)     // since when a relayed video has not arrived
	needSince := make([][]time.Duration, nb) // when the bridge last needed the video
	gateV := make([][]bool, nb)
	gateA := make([][]bool, nb)
	for x := range nb {
		sels[x] = speaker.New(p)
		hasVideo[x], gateV[x], gateA[x] = make([]bool, n), make([]bool, n), make([]bool, n)
		quiet[x], needSince[x] = make([]time.Duration, n), make([]time.Duration, n)
		for s := range n {
			if home[s] == x || from[x][s] >= 0 {
				sels[x].Add(speaker.ID(m.sites[s].p))
				sels[x].SetVideo(speaker.ID(m.sites[s].p), true)
				hasVideo[x][s] = true
				quiet[x][s] = -1
			}
		}
		for _, s := range pinned {
			sels[x].Pin(speaker.ID(m.sites[s].p), true)
		}
	}
	needed := func(x, s int, now time.Duration) bool { return now-needSince[x][s] < time.Second }

	classes := map[string]*simClass{}
	order := []string{}
	for l := range links {
		name := classOf(m, l)
		if classes[name] == nil {
			short := strings.NewReplacer(" ↓", "-down", " ↑", "-up", " ↔ ", "-", " ", "").Replace(name)
			classes[name] = &simClass{name: name, short: short}
			order = append(order, name)
		}
		classes[name].all = max(classes[name].all, 2*len(links[l]))
	}

	start := time.Unix(0, 0)
	prevV := make([][]bool, nb)
	prevA := make([][]bool, nb)
	for x := range nb {
		prevV[x], prevA[x] = make([]bool, n), make([]bool, n)
	}
	for now := tick; now <= d; now += tick {
		for x := range nb {
			copy(prevV[x], gateV[x])
			copy(prevA[x], gateA[x])
		}
		// Each bridge reads what arrived during the tick (its neighbours' gates as they
		// were), as sfu.Selector.update does, then moves its own gates.
		for x := range nb {
			sel := sels[x]
			for s := range n {
				y := from[x][s]
				if y < 0 {
					continue // its own, or not held here
				}
				arrived := prevV[y][s] && needed(x, s, now)
				switch {
				case arrived:
					quiet[x][s] = -1
					if !hasVideo[x][s] {
						hasVideo[x][s] = true
						sel.SetVideo(speaker.ID(m.sites[s].p), true)
					}
				case !needed(x, s, now):
					quiet[x][s] = -1 // asked not to send it: not a video that stopped
					if !hasVideo[x][s] && (isPinned[s] || sel.Dominant() == speaker.ID(m.sites[s].p)) {
						hasVideo[x][s] = true
						sel.SetVideo(speaker.ID(m.sites[s].p), true)
					}
				case quiet[x][s] < 0:
					quiet[x][s] = now
				case hasVideo[x][s] && now-quiet[x][s] >= time.Second:
					hasVideo[x][s] = false
					sel.SetVideo(speaker.ID(m.sites[s].p), false)
				}
			}
			sel.Update(start.Add(now), func(id speaker.ID) (float64, bool) {
				s := srcIdx[ids.ParticipantID(id)]
				if home[s] == x {
					return loud[s], true
				}
				if y := from[x][s]; y >= 0 && prevA[y][s] {
					return loud[s], true
				}
				return 0, false
			})
			for s := range n {
				id := speaker.ID(m.sites[s].p)
				gateV[x][s], gateA[x][s] = sel.Video(id), sel.Audio(id)
				if gateV[x][s] {
					needSince[x][s] = now
				}
			}
		}
		if now <= time.Second {
			continue
		}
		for l, srcs := range links {
			x, y := bridgeIdx[l.from], bridgeIdx[l.to]
			v, a := 0, 0
			for _, s := range srcs {
				if gateV[x][s] && needed(y, s, now) {
					v++
				}
				if gateA[x][s] {
					a++
				}
			}
			c := classes[classOf(m, l)]
			if v+a > c.lastN {
				c.lastN, c.video, c.audio = v+a, v, a
			}
		}
	}
	r := simResult{links: links, bound: p.VideoN + p.AudioN + len(pinned)}
	slices.Sort(order)
	for _, name := range order {
		r.classes = append(r.classes, *classes[name])
	}
	return r
}

// classOf names l's class of link and its direction: ↓ from the parent bridge down to
// the child, ↑ up.
func classOf(m *simTree, l simLink) string {
	if m.parent[l.to] == l.from {
		return m.class(l.to) + " ↓"
	}
	return m.class(l.from) + " ↑"
}
