package relayplan

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/cau-project/cau/ids"
)

// The bridge tree of the tests: central at the top, a province below it, two districts
// below the province, and a second province.
//
//	central ─ prov ─ d1
//	   │        └─── d2
//	   └──── prov2
var tree = map[ids.BridgeID]ids.BridgeID{"prov": "central", "d1": "prov", "d2": "prov", "prov2": "central"}

func sub(p, bridge string) Subscriber {
	return Subscriber{Participant: ids.ParticipantID(p), Bridge: ids.BridgeID(bridge), Peer: ids.ForEndpoint(ids.ParticipantID(p), 1)}
}

func cam(p, origin string) Stream {
	return Stream{Key: ids.StreamKey{Participant: ids.ParticipantID(p), Source: ids.SourceCamera}, Origin: ids.BridgeID(origin),
		StreamID: p + ".camera"}
}

// fwd writes a forwarding as "bridge>peer:key", the peer "p" for an endpoint or "@bridge"
// for the relay peer facing that bridge.
func fwd(f Forward) string {
	peer := string(f.Peer.Endpoint.Participant)
	if f.Peer.IsRelay() {
		peer = "@" + string(f.Peer.Relay.Bridge)
	}
	return string(f.Bridge) + ">" + peer + ":" + string(f.Key.Participant)
}

func TestCompute(t *testing.T) {
	for _, c := range []struct {
		name     string
		subs     []Subscriber
		streams  []Stream
		links    []string // "child-parent"
		forwards []string
	}{
		{name: "one bridge: no relay", subs: []Subscriber{sub("a", "central"), sub("b", "central")},
			streams:  []Stream{cam("a", "central")},
			forwards: []string{"central>b:a"}},
		{name: "nobody publishes: links, no forwarding", subs: []Subscriber{sub("a", "central"), sub("b", "d1")},
			links: []string{"d1-prov", "prov-central"}},
		{name: "chair at the top, commune below: down the chain",
			subs: []Subscriber{sub("chair", "central"), sub("x", "d1")}, streams: []Stream{cam("chair", "central")},
			links:    []string{"d1-prov", "prov-central"},
			forwards: []string{"central>@prov:chair", "prov>@d1:chair", "d1>x:chair"}},
		{name: "a send-only publisher alone on its bridge (WHIP): its link is wanted",
			subs: []Subscriber{sub("chair", "central")}, streams: []Stream{cam("whip", "d1")},
			links:    []string{"d1-prov", "prov-central"},
			forwards: []string{"d1>@prov:whip", "prov>@central:whip", "central>chair:whip"}},
		{name: "commune takes the floor: up the chain",
			subs: []Subscriber{sub("chair", "central"), sub("x", "d1")}, streams: []Stream{cam("x", "d1")},
			links:    []string{"d1-prov", "prov-central"},
			forwards: []string{"d1>@prov:x", "prov>@central:x", "central>chair:x"}},
		{name: "sibling districts: the top link is not needed",
			subs: []Subscriber{sub("x", "d1"), sub("y", "d2")}, streams: []Stream{cam("x", "d1")},
			links:    []string{"d1-prov", "d2-prov"},
			forwards: []string{"d1>@prov:x", "prov>@d2:x", "d2>y:x"}},
		{name: "one copy per link for many subscribers beyond it",
			subs:    []Subscriber{sub("chair", "central"), sub("x", "d1"), sub("y", "d1"), sub("z", "d2")},
			streams: []Stream{cam("chair", "central")},
			links:   []string{"d1-prov", "d2-prov", "prov-central"},
			forwards: []string{"central>@prov:chair", "prov>@d1:chair", "prov>@d2:chair", "d1>x:chair", "d1>y:chair",
				"d2>z:chair"}},
		{name: "across the top: province to province",
			subs: []Subscriber{sub("x", "d1"), sub("w", "prov2")}, streams: []Stream{cam("w", "prov2")},
			links:    []string{"d1-prov", "prov-central", "prov2-central"},
			forwards: []string{"prov2>@central:w", "central>@prov:w", "prov>@d1:w", "d1>x:w"}},
		{name: "alone: nothing", subs: []Subscriber{sub("x", "d1")}, streams: []Stream{cam("x", "d1")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := Compute(Input{Meeting: "m1", Subscribers: c.subs, Streams: c.streams, Parent: tree})
			var links, forwards []string
			for l := range p.Links {
				links = append(links, string(l.Child)+"-"+string(l.Parent))
			}
			for f, tr := range p.Forwards {
				forwards = append(forwards, fwd(f))
				want := Track{TrackID: f.Key.String(), StreamID: f.Key.String()}
				if !f.Peer.IsRelay() {
					want.StreamID = string(f.Key.Participant) + ".camera"
				}
				if tr != want {
					t.Errorf("%s carries %+v, want %+v", fwd(f), tr, want)
				}
				if f.Peer.IsRelay() && f.Peer.Relay.Meeting != "m1" {
					t.Errorf("%s: relay peer of meeting %q", fwd(f), f.Peer.Relay.Meeting)
				}
			}
			slices.Sort(links)
			slices.Sort(forwards)
			slices.Sort(c.links)
			slices.Sort(c.forwards)
			if strings.Join(links, " ") != strings.Join(c.links, " ") {
				t.Errorf("links %v, want %v", links, c.links)
			}
			if strings.Join(forwards, " ") != strings.Join(c.forwards, " ") {
				t.Errorf("forwards %v, want %v", forwards, c.forwards)
			}
		})
	}
}

// TestComputeLoopInTree: a parent map with a loop (bad data) gives a plan, not a hang.
func TestComputeLoopInTree(t *testing.T) {
	loop := map[ids.BridgeID]ids.BridgeID{"a": "b", "b": "a"}
	p := Compute(Input{Meeting: "m", Subscribers: []Subscriber{sub("x", "a"), sub("y", "b")}, Streams: []Stream{cam("x", "a")},
		Parent: loop})
	if _, ok := p.Forwards[Forward{"a", ids.ForEndpoint("y", 1), cam("x", "a").Key}]; ok {
		t.Fatal("forwarded to a subscriber on another bridge")
	}
}

func TestDiff(t *testing.T) {
	a := Forward{"central", ids.ForEndpoint("b", 1), cam("a", "central").Key}
	b := Forward{"central", ids.ForRelay("m", "prov"), cam("a", "central").Key}
	up, top := Link{"prov", "central"}, Link{"d1", "prov"}
	have := map[Forward]Track{a: {}}
	c := Diff(map[Link]bool{top: true}, have, Plan{Links: map[Link]bool{up: true}, Forwards: map[Forward]Track{b: {"t", "s"}}})
	if !slices.Equal(c.OpenLinks, []Link{up}) || !slices.Equal(c.CloseLinks, []Link{top}) ||
		!slices.Equal(c.Unsubscribe, []Forward{a}) || !maps.Equal(c.Subscribe, map[Forward]Track{b: {"t", "s"}}) {
		t.Fatalf("diff %+v", c)
	}
	if !Diff(map[Link]bool{up: true}, map[Forward]Track{b: {}}, Plan{Links: map[Link]bool{up: true},
		Forwards: map[Forward]Track{b: {}}}).Empty() {
		t.Fatal("no change gave a non-empty diff")
	}
}

// benchInput is a meeting over a bridge tree of one top, provinces and districts, with
// endpoints spread over the districts and the chair at the top publishing camera and
// microphone, and one district speaking.
func benchInput(provinces, districts, perDistrict int) Input {
	in := Input{Meeting: "m", Parent: map[ids.BridgeID]ids.BridgeID{}}
	in.Subscribers = append(in.Subscribers, sub("chair", "top"))
	for p := range provinces {
		pb := ids.BridgeID("p" + strconvI(p))
		in.Parent[pb] = "top"
		for d := range districts {
			db := pb + "-d" + ids.BridgeID(strconvI(d))
			in.Parent[db] = pb
			for e := range perDistrict {
				in.Subscribers = append(in.Subscribers, sub(string(db)+"-e"+strconvI(e), string(db)))
			}
		}
	}
	speaker := in.Subscribers[len(in.Subscribers)-1]
	for _, s := range []Subscriber{in.Subscribers[0], speaker} {
		in.Streams = append(in.Streams,
			Stream{Key: ids.StreamKey{Participant: s.Participant, Source: ids.SourceCamera}, Origin: s.Bridge},
			Stream{Key: ids.StreamKey{Participant: s.Participant, Source: ids.SourceMicrophone}, Origin: s.Bridge})
	}
	return in
}

func strconvI(i int) string { return string(rune('a'+i/26)) + string(rune('a'+i%26)) }

// BenchmarkCompute plans a province meeting (258 endpoints on 21 bridges) and a national
// one (3,400 endpoints on 375 bridges), four streams each.
func BenchmarkCompute(b *testing.B) {
	for _, c := range []struct {
		name                          string
		provinces, districts, perDist int
	}{{"province-258", 1, 20, 13}, {"national-3400", 34, 10, 10}} {
		in := benchInput(c.provinces, c.districts, c.perDist)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = Compute(in)
			}
		})
	}
}
