package signaling

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/relayplan"
	"github.com/cau-project/cau/rooms"
)

// idBridge is a bridge as the planning sees one: an id at a site. These tests check the
// meeting's records against a fresh plan; the op queue that would call a bridge is never
// started, so none of its commands runs.
type idBridge struct {
	id   ids.BridgeID
	site ids.SiteID
}

func (b *idBridge) ID() ids.BridgeID            { return b.id }
func (b *idBridge) Site() ids.SiteID            { return b.site }
func (b *idBridge) CreatePeer(ids.PeerID) error { return nil }
func (b *idBridge) Offer(context.Context, ids.PeerID, string, map[string]ids.StreamKey) (string, error) {
	return "", nil
}
func (b *idBridge) Answer(ids.PeerID, string) error { return nil }
func (b *idBridge) AddCandidate(ids.PeerID, protocol.Target, protocol.ICECandidate) error {
	return nil
}
func (b *idBridge) Subscribe(ids.PeerID, ids.StreamKey, string, string, ids.MeetingID) error {
	return nil
}
func (b *idBridge) Unsubscribe(ids.PeerID, ids.StreamKey) error { return nil }
func (b *idBridge) ClosePeer(ids.PeerID) error                  { return nil }
func (b *idBridge) Pin(protocol.BridgePin) error                { return nil }
func (b *idBridge) View(protocol.BridgeView) error              { return nil }
func (b *idBridge) CapLayers(protocol.BridgeLayerCap) error     { return nil }
func (b *idBridge) UseSlots(protocol.BridgeSlots) error         { return nil }

// planMeeting is a meeting on three bridges in a chain, central ← prov ← dist, whose op
// and write queues never run.
func planMeeting(t *testing.T, floor rooms.FloorState) (*meeting, []Bridge) {
	parents := map[string][]string{"prov": {"central"}, "dist": {"prov", "central"}, "c1": {"dist", "prov", "central"}}
	srv := New(Config{Ancestry: func(site string) []string { return parents[site] }})
	bs := []Bridge{&idBridge{"b-central", "central"}, &idBridge{"b-prov", "prov"}, &idBridge{"b-dist", "dist"}}
	srv.focus.root = bs[0]
	for _, b := range bs {
		srv.focus.add(b)
	}
	m := meetingState(srv, "m1", nil)
	t.Cleanup(m.stop)
	m.floor = floor
	return m, bs
}

// enter puts a session into m as add does (the records, then a plan).
func enter(m *meeting, id, site string, b Bridge, sendOnly bool, publishes ...ids.Source) *session {
	done := make(chan struct{})
	close(done) // nobody reads its socket: what it is sent is dropped
	s := &session{srv: m.srv, meeting: m, done: done, sendOnly: sendOnly,
		claims: &auth.Claims{Site: site, Role: auth.RoleParticipant},
		self:   protocol.Participant{ID: id, Site: site, Streams: map[protocol.Source]string{protocol.SourceCamera: "s-" + id}}}
	if b != nil {
		s.bridge, s.peerID = b, ids.ForEndpoint(ids.ParticipantID(id), 0)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.participants[id] = s
	for _, src := range publishes {
		key := ids.StreamKey{Participant: ids.ParticipantID(id), Source: src}
		m.streams[key] = &streamInfo{owner: s, origin: b, source: src, kind: "video"}
	}
	m.reconcile()
	return s
}

// planGap says how m's records differ from a plan made afresh ("" if they do not).
func planGap(m *meeting) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	in, bridges := m.planInput()
	plan := relayplan.Compute(in)
	have := map[relayplan.Link]bool{}
	for l := range m.relays {
		have[l] = true
	}
	if ch := relayplan.Diff(have, m.fwd, plan); !ch.Empty() {
		return fmt.Sprintf("records differ from a new plan: open %v, unsubscribe %v, subscribe %v, close %v",
			ch.OpenLinks, ch.Unsubscribe, ch.Subscribe, ch.CloseLinks)
	}
	if want := m.wantedPins(bridges); !maps.Equal(want, m.pins) {
		return fmt.Sprintf("pins %v, a new plan has %v", m.pins, want)
	}
	return ""
}

// TestLeaveEqualsFullPlan: whichever way a leave updates the records (dropping the
// leaver's own forwardings, or a new plan), they equal what a new plan of the meeting
// makes, leave after leave, over random meetings: participants on three bridges,
// publishers, send-only and unplaced endpoints, the chair's site pinned for everyone,
// participants' own pins, both floor modes.
func TestLeaveEqualsFullPlan(t *testing.T) {
	sites := []string{"central", "prov", "dist", "c1"}
	var kept, planned int
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 11))
		floor := rooms.FloorState{Mode: rooms.ModeDiscussion, ChairSite: "central"}
		if seed%2 == 1 {
			floor.Mode = rooms.ModeDirected // only the chair's site sends
		}
		m, bs := planMeeting(t, floor)
		var all []*session
		for i := range 12 + rng.IntN(30) {
			var b Bridge
			if rng.IntN(10) > 0 {
				b = bs[rng.IntN(len(bs))]
			}
			var pub []ids.Source
			if b != nil && rng.IntN(6) == 0 {
				pub = []ids.Source{ids.SourceCamera, ids.SourceMicrophone}
			}
			s := enter(m, fmt.Sprintf("p%d", i), sites[rng.IntN(len(sites))], b, rng.IntN(12) == 0, pub...)
			all = append(all, s)
		}
		m.mu.Lock()
		for _, s := range all[:3] { // a few pin a site for themselves
			m.mine[s.self.ID] = map[string]bool{sites[rng.IntN(len(sites))]: true}
		}
		m.reconcile()
		m.mu.Unlock()
		if gap := planGap(m); gap != "" {
			t.Fatalf("seed %d, before any leave: %s", seed, gap)
		}
		rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		for _, s := range all {
			before := m.plans
			m.remove(s)
			if m.plans == before {
				kept++
			} else {
				planned++
			}
			if gap := planGap(m); gap != "" {
				t.Fatalf("seed %d, after %s (site %s) left: %s", seed, s.self.ID, s.self.Site, gap)
			}
		}
	}
	if kept == 0 || planned == 0 {
		t.Fatalf("%d leaves kept the plan, %d made a new one: the test must see both", kept, planned)
	}
	t.Logf("%d leaves kept the plan, %d made a new one", kept, planned)
}

// TestStormTeardownLeavesPlanNothing: a 258-endpoint meeting on one bridge with two
// publishers ends. Each of the 256 other endpoints' leaves plans nothing and looks at no
// more than two others to decide so, whatever the meeting's size: the lock is held for
// a bounded amount of planning per leave, not a plan of O(participants × streams).
func TestStormTeardownLeavesPlanNothing(t *testing.T) {
	m, bs := planMeeting(t, rooms.FloorState{Mode: rooms.ModeDiscussion, ChairSite: "central"})
	var all []*session
	for i := range 258 {
		var pub []ids.Source
		site := "c1"
		if i < 2 {
			pub, site = []ids.Source{ids.SourceCamera, ids.SourceMicrophone}, "central"
		}
		all = append(all, enter(m, fmt.Sprintf("p%d", i), site, bs[0], false, pub...))
	}
	if len(m.fwd) != 2*2*257 {
		t.Fatalf("%d forwardings; want %d", len(m.fwd), 2*2*257)
	}
	for i, s := range all[2:] {
		plans, scans := m.plans, m.leaveScans
		m.remove(s)
		if m.plans != plans {
			t.Fatalf("leave %d made a new plan", i)
		}
		if d := m.leaveScans - scans; d > 2 {
			t.Fatalf("leave %d looked at %d participants; want at most 2", i, d)
		}
		if i%32 == 0 {
			if gap := planGap(m); gap != "" {
				t.Fatalf("after leave %d: %s", i, gap)
			}
		}
	}
	if len(m.fwd) != 2*2 {
		t.Fatalf("%d forwardings left; want the two publishers' to each other, 4", len(m.fwd))
	}
	plans := m.plans
	m.remove(all[0]) // a publisher: its streams go, a new plan
	if m.plans != plans+1 {
		t.Fatalf("a publisher's leave made %d plans; want 1", m.plans-plans)
	}
	if gap := planGap(m); gap != "" {
		t.Fatal(gap)
	}
}
