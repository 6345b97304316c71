package signaling_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/ids"
)

// relayBothDeadline is how long a relay link may take to carry media both ways once its
// sites' bridges receive their media: generous on a loaded box (a race build among the whole suite on two shared
// cores once took 8 s), and well under the ~25 s ICE takes to give up on a connection
// whose checks another connection swallowed (the failure this test guards).
const relayBothDeadline = 12 * time.Second

// TestRelayLinksCarryBothWays opens the relay links of several meetings over the same pair
// of bridges, again and again: in every meeting a site at central and one at the province
// both publish and watch each other, so each link carries media both ways. Both directions
// of every link must carry media (the relay peers' packet counters, each end) within
// relayBothDeadline of the publishers' media reaching their bridges, every round, and the
// sites then receive each other. Were two
// connections between the same two bridges to share a pair of UDP sockets (both
// directions of a link, or the links of two meetings), one of them could stay silent.
func TestRelayLinksCarryBothWays(t *testing.T) {
	const meetings, rounds = 3, 4
	c := startSteadyCascade(t, "prov")
	var failures []string
	for round := range rounds {
		type pair struct{ central, prov *client.Client }
		pairs := make([]pair, meetings)
		for i := range pairs {
			m := fmt.Sprintf("m%d", i+1)
			pairs[i] = pair{c.publisher(t, m, "central", fmt.Sprintf("central %s r%d", m, round)),
				c.publisher(t, m, "prov", fmt.Sprintf("province %s r%d", m, round))}
		}
		// The deadline is the links': it starts once every publisher's bridge receives its
		// media. A link opens only for streams that are live, and under -race on a loaded
		// box the six endpoints' own connections took over 12 s, which counted against the
		// links ("0 ends of the link reported", round after round; 0 of 3 runs passed at a
		// load of 30).
		eventually(t, 60*time.Second, func() string { return bridgesReceive(c, meetings, round) })
		start := time.Now()
		late := map[int]string{}
		for time.Since(start) < relayBothDeadline {
			clear(late)
			for i := range pairs {
				if why := carriesBothWays(c, fmt.Sprintf("m%d", i+1)); why != "" {
					late[i] = why
				}
			}
			if len(late) == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		for i, why := range late {
			failures = append(failures, fmt.Sprintf("round %d, meeting m%d: %s", round, i+1, why))
		}
		t.Logf("round %d: %d of %d links carried media both ways within %v (%v)", round, meetings-len(late), meetings,
			relayBothDeadline, time.Since(start).Round(100*time.Millisecond))
		// And what crossed reached the sites (no deadline of its own: on a loaded box the
		// endpoints' connections take their time too).
		for i, p := range pairs {
			if late[i] == "" {
				eventually(t, 20*time.Second, func() string {
					return receivesFrom(p.prov, p.central, 50) + receivesFrom(p.central, p.prov, 50)
				})
			}
		}
		// Everyone leaves: the links close, and the next round opens them again.
		for _, p := range pairs {
			p.central.Leave()
			p.prov.Leave()
		}
		eventually(t, 10*time.Second, func() string {
			for on, sts := range c.sig.RelayStats() {
				if len(sts) != 0 {
					return fmt.Sprintf("%d relay peers still open on %s after everyone left", len(sts), on)
				}
			}
			return ""
		})
	}
	if len(failures) > 0 {
		t.Fatalf("%d of %d relay links did not carry media both ways within %v:\n%s", len(failures), meetings*rounds,
			relayBothDeadline, strings.Join(failures, "\n"))
	}
}

// relayMinPackets is what each direction of a link must have carried to count.
const relayMinPackets = 20

// carriesBothWays says "" once each end of meeting's relay link between central and the
// province bridge has received relayMinPackets from the other (the province's counters
// as of its last heartbeat), what is missing otherwise.
func carriesBothWays(c *cascade, meeting string) string {
	var out []string
	ends := 0
	for on, sts := range c.sig.RelayStats() {
		for _, st := range sts {
			if st.Peer.Relay.Meeting != ids.MeetingID(meeting) {
				continue
			}
			ends++
			if st.PacketsRecv < relayMinPackets {
				out = append(out, fmt.Sprintf("%s received %d packets from %s (sent %d)", on, st.PacketsRecv,
					st.Peer.Relay.Bridge, st.PacketsSent))
			}
		}
	}
	if ends != 2 {
		out = append(out, fmt.Sprintf("%d ends of the link reported, want 2", ends))
	}
	return strings.Join(out, "; ")
}

// bridgesReceive says "" once each publisher of round (two in each of the meetings) has
// sent relayMinPackets to its bridge, as the bridge counts them; what is missing otherwise.
func bridgesReceive(c *cascade, meetings, round int) string {
	got := map[string]int{}
	var out []string
	for _, l := range c.sig.Links() {
		if !strings.HasSuffix(l.Participant.Name, fmt.Sprintf(" r%d", round)) {
			continue
		}
		if l.Up.Packets < relayMinPackets {
			out = append(out, fmt.Sprintf("%s's bridge %s received %d packets from it", l.Participant.Name, l.Bridge, l.Up.Packets))
			continue
		}
		got[l.Meeting]++
	}
	for i := range meetings {
		if m := fmt.Sprintf("m%d", i+1); got[m] != 2 {
			out = append(out, fmt.Sprintf("meeting %s: %d of 2 publishers reach their bridges", m, got[m]))
		}
	}
	return strings.Join(out, "; ")
}
