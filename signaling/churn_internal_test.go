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

// enter joins a session to m through add, and publishes its streams through published,
// as the handlers do.
func enter(t *testing.T, m *meeting, id, site string, b Bridge, sendOnly bool, publishes ...ids.Source) *session {
	t.Helper()
	done := make(chan struct{})
	close(done) // nobody reads its socket: what it is sent is dropped
	s := &session{srv: m.srv, meeting: m, done: done, sendOnly: sendOnly,
		claims: &auth.Claims{Site: site, Role: auth.RoleParticipant},
		self:   protocol.Participant{ID: id, Site: site, Streams: map[protocol.Source]string{protocol.SourceCamera: "s-" + id}}}
	if b != nil {
		s.bridge, s.peerID = b, ids.ForEndpoint(ids.ParticipantID(id), 0)
	}
	if err := m.add(s, func([]protocol.Participant, *protocol.FloorState) {}); err != nil {
		t.Fatal(err)
	}
	for _, src := range publishes {
		m.published(s, b, ids.StreamKey{Participant: ids.ParticipantID(id), Source: src}, "video")
	}
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

// churnCounts counts the joins and leaves that kept the plan and those that made one.
type churnCounts struct{ joinKept, joinPlanned, leaveKept, leavePlanned int }

// TestChurnEqualsFullPlan: whichever way a join or a leave updates the records (adding
// or dropping the endpoint's own forwardings, or a new plan), they equal what a new plan
// of the meeting makes, after every step, over random meetings of joins and leaves
// interleaved: participants on three bridges, publishers, send-only and unplaced
// endpoints, the chair's site pinned for everyone, participants' own pins, both floor
// modes.
func TestChurnEqualsFullPlan(t *testing.T) {
	sites := []string{"central", "prov", "dist", "c1"}
	var n churnCounts
	for seed := range uint64(16) {
		rng := rand.New(rand.NewPCG(seed, 11))
		floor := rooms.FloorState{Mode: rooms.ModeDiscussion, ChairSite: "central"}
		if seed%2 == 1 {
			floor.Mode = rooms.ModeDirected // only the chair's site sends
		}
		m, bs := planMeeting(t, floor)
		var here []*session
		for step := range 80 {
			switch r := rng.IntN(10); {
			case r < 6 || len(here) == 0: // a join
				var b Bridge
				if rng.IntN(10) > 0 {
					b = bs[rng.IntN(len(bs))]
				}
				var pub []ids.Source
				if b != nil && rng.IntN(6) == 0 {
					pub = []ids.Source{ids.SourceCamera, ids.SourceMicrophone}
				}
				before := m.plans
				s := enter(t, m, fmt.Sprintf("p%d", step), sites[rng.IntN(len(sites))], b, rng.IntN(12) == 0)
				if m.plans == before {
					n.joinKept++
				} else {
					n.joinPlanned++
				}
				for _, src := range pub {
					m.published(s, b, ids.StreamKey{Participant: ids.ParticipantID(s.self.ID), Source: src}, "video")
				}
				here = append(here, s)
			case r < 9: // a leave
				i := rng.IntN(len(here))
				s := here[i]
				here = append(here[:i], here[i+1:]...)
				before := m.plans
				m.remove(s)
				if m.plans == before {
					n.leaveKept++
				} else {
					n.leavePlanned++
				}
			default: // someone pins a site for itself, as handlePin does
				s := here[rng.IntN(len(here))]
				m.mu.Lock()
				m.mine[s.self.ID] = map[string]bool{sites[rng.IntN(len(sites))]: true}
				m.reconcile()
				m.mu.Unlock()
			}
			if gap := planGap(m); gap != "" {
				t.Fatalf("seed %d, step %d: %s", seed, step, gap)
			}
		}
	}
	if n.joinKept == 0 || n.joinPlanned == 0 || n.leaveKept == 0 || n.leavePlanned == 0 {
		t.Fatalf("%+v: the test must see each way taken", n)
	}
	t.Logf("%+v", n)
}

// TestStormPlansNothingPerEndpoint: a 258-endpoint meeting on one bridge with two
// publishers starts and ends. Past the first few, no join or leave of the 256 others
// makes a plan, and none looks at more than two others to decide so, whatever the
// meeting's size: the lock is held for a bounded amount of planning per endpoint, not
// a plan of O(participants × streams).
func TestStormPlansNothingPerEndpoint(t *testing.T) {
	m, bs := planMeeting(t, rooms.FloorState{Mode: rooms.ModeDiscussion, ChairSite: "central"})
	both := []ids.Source{ids.SourceCamera, ids.SourceMicrophone}
	all := []*session{enter(t, m, "p0", "central", bs[0], false, both...), enter(t, m, "p1", "central", bs[0], false, both...)}
	for i := 2; i < 258; i++ {
		plans, scans := m.plans, m.planScans
		all = append(all, enter(t, m, fmt.Sprintf("p%d", i), "c1", bs[0], false))
		if m.plans != plans {
			t.Fatalf("join %d made a new plan", i)
		}
		if d := m.planScans - scans; d > 2 {
			t.Fatalf("join %d looked at %d participants; want at most 2", i, d)
		}
	}
	if len(m.fwd) != 2*2*257 {
		t.Fatalf("%d forwardings; want %d", len(m.fwd), 2*2*257)
	}
	if gap := planGap(m); gap != "" {
		t.Fatalf("after the joins: %s", gap)
	}
	for i, s := range all[2:] {
		plans, scans := m.plans, m.planScans
		m.remove(s)
		if m.plans != plans {
			t.Fatalf("leave %d made a new plan", i)
		}
		if d := m.planScans - scans; d > 2 {
			t.Fatalf("leave %d looked at %d participants; want at most 2", i, d)
		}
	}
	if len(m.fwd) != 2*2 {
		t.Fatalf("%d forwardings left; want the two publishers' to each other, 4", len(m.fwd))
	}
	if gap := planGap(m); gap != "" {
		t.Fatalf("after the leaves: %s", gap)
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
