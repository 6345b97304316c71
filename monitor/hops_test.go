package monitor

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
)

// hopSim keeps one hop direction's cumulative counters, as a bridge reports them.
type hopSim struct{ f protocol.HopFigures }

// second adds a second of traffic: pps packets, lossPct of them reported lost, and one
// RTT sample of rttMs (none if 0).
func (h *hopSim) second(pps, lossPct, rttMs float64) *protocol.HopFigures {
	h.f.Packets += uint64(pps)
	h.f.Bytes += uint64(pps) * 1000
	h.f.Reported += uint64(pps)
	h.f.Lost += uint64(math.Round(pps * lossPct / 100))
	if rttMs > 0 {
		h.f.RTTSumMs += rttMs
		h.f.RTTSamples++
		h.f.RTTMaxMs = rttMs
	}
	f := h.f
	return &f
}

// TestHopFiguresBlameOnlyTheirHop: central → district relay link loses 8%. The commune's
// subscriber behind it reports the same 8% (it arrived missing), but its own link's hop
// figures are clean: the relay hop alone is poor; the commune is good and marked affected
// by it. Then the commune's own link loses 8% on a clean relay: now it alone is poor.
func TestHopFiguresBlameOnlyTheirHop(t *testing.T) {
	h := newHarness(t, testTree(t))
	bridges := map[string]string{"local": "central", "br-d1": "d1"}
	chair := newEndpoint("chair", "central", "local")
	chair.down = protocol.LinkFigures{LastPacketAgeMs: -1} // publishes only
	sub := newEndpoint("sub", "c1", "br-d1")
	sub.up = protocol.LinkFigures{LastPacketAgeMs: -1} // listens only
	var chairUp, relayDown, relayUp, subDown hopSim
	var relaySent uint64
	run := func(seconds int, relayLoss, accessLoss float64) *Snapshot {
		var s *Snapshot
		for range seconds {
			chair.second(0)
			sub.second(relayLoss + accessLoss) // what its receiver reports miss: everything
			chair.up.Hop = chairUp.second(300, 0, 0)
			sub.down.Hop = subDown.second(300, accessLoss, 1)
			relaySent += 300
			relays := map[string][]protocol.RelayStat{
				"local": {{Peer: ids.ForRelay("m1", "br-d1"), PacketsSent: relaySent, StreamsSent: 1, LossPct: relayLoss,
					RTTMs: 3970, Hop: relayDown.second(300, relayLoss, 200)}}, // a bogus report RTT the hop's replaces
				"br-d1": {{Peer: ids.ForRelay("m1", "local"), PacketsRecv: relaySent, StreamsRecv: 1,
					Hop: relayUp.second(0, 0, 0)}},
			}
			s = h.step([]*endpoint{chair, sub}, relays, bridges)
		}
		return s
	}
	hop := func(s *Snapshot, site, kind, dir string) HopView {
		for _, v := range s.Hops {
			if v.Site == site && v.Kind == kind && v.Direction == dir {
				return v
			}
		}
		t.Fatalf("no hop %s %s %s in %+v", site, kind, dir, s.Hops)
		return HopView{}
	}

	s := run(8, 8, 0)
	relay, access, chairHop := hop(s, "d1", HopRelay, "down"), hop(s, "c1", HopAccess, "down"), hop(s, "central", HopAccess, "up")
	if relay.Grade != GradePoor || math.Abs(relay.LossPct-8) > 0.5 || math.Abs(relay.RTTMs-200) > 1 || !relay.HopMeasured {
		t.Errorf("relay hop %+v, want poor with 8%% loss and RTT 200 ms", relay)
	}
	if access.Grade != GradeGood || access.LossPct != 0 || math.Abs(access.UpstreamLossPct-8) > 0.5 {
		t.Errorf("commune access hop %+v, want good, 0%% own loss, 8%% upstream", access)
	}
	if chairHop.Grade != GradeGood {
		t.Errorf("chair's access hop %+v, want good", chairHop)
	}
	if v := s.Sites["c1"]; v.Grade != GradeGood || !strings.Contains(v.AffectedBy, "central→d1") {
		t.Errorf("c1 %+v, want good and affected by the relay central→d1", v)
	}
	if v := s.Sites["d1"]; v.Grade != GradePoor {
		t.Errorf("d1 %v, want poor through its uplink", v.Grade)
	}
	d, _ := h.m.Detail("c1")
	var chain []string
	for _, c := range d.Chain {
		chain = append(chain, c.Site+" "+c.Kind+" "+c.Direction)
	}
	if got := strings.Join(chain, ", "); got != "central access up, d1 relay down, c1 access down" {
		t.Errorf("chain %q, want the chair's access, the relay, the commune's access", got)
	}

	// The relay recovers; the commune's own link loses 8%. After the hold (10 s) the relay
	// is good again; the commune alone is poor, affected by nothing.
	s = run(16, 0, 8)
	relay, access = hop(s, "d1", HopRelay, "down"), hop(s, "c1", HopAccess, "down")
	if relay.Grade != GradeGood || relay.LossPct != 0 {
		t.Errorf("relay hop %+v, want good", relay)
	}
	if access.Grade != GradePoor || math.Abs(access.LossPct-8) > 0.5 || access.UpstreamLossPct > 0.5 {
		t.Errorf("commune access hop %+v, want poor with its own 8%%", access)
	}
	if v := s.Sites["c1"]; v.Grade != GradePoor || v.AffectedBy != "" {
		t.Errorf("c1 %+v, want poor and affected by nothing", v)
	}
}

// TestHopLossNeverWraps: a packet counted lost that arrives late moves back to received,
// so the cumulative Lost counter can go down within a window. The window's loss is then
// zero, never a wrapped uint64 (seen in CI as a loss of 4.9e17%).
func TestHopLossNeverWraps(t *testing.T) {
	w := hopWindow{size: 5}
	now := time.Unix(1000, 0)
	f := protocol.HopFigures{Packets: 1000, Bytes: 1e6, Reported: 1000, Lost: 3}
	w.add(&f, now)
	f.Packets, f.Bytes, f.Reported, f.Lost = 1300, 1.3e6, 1300, 2 // one late arrival, nothing lost since
	w.add(&f, now.Add(time.Second))
	h := w.figures()
	if !h.lossOK || h.lost != 0 || h.lossPct != 0 {
		t.Fatalf("after a late arrival: %+v, want loss measured and zero", h)
	}
}
