package signaling_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/ids"
)

// relayBothDeadline is how long a relay link may take to carry media both ways after its
// sites join: generous on a loaded box, and well under the ~25 s ICE takes to give up on
// a connection whose checks another connection swallowed (the failure this test guards).
const relayBothDeadline = 8 * time.Second

// TestRelayLinksCarryBothWays opens the relay links of several meetings over the same pair
// of bridges, again and again: in every meeting a site at central and one at the province
// both publish and watch each other, so each link carries media both ways. Both directions
// of every link must carry media within relayBothDeadline, every round. Were two
// connections between the same two bridges to share a pair of UDP sockets (both
// directions of a link, or the links of two meetings), one of them could stay silent.
func TestRelayLinksCarryBothWays(t *testing.T) {
	const meetings, rounds = 3, 4
	c := startCascade(t, "prov")
	var failures []string
	for round := range rounds {
		type pair struct{ central, prov *client.Client }
		pairs := make([]pair, meetings)
		for i := range pairs {
			m := fmt.Sprintf("m%d", i+1)
			pairs[i] = pair{c.publisher(t, m, "central", fmt.Sprintf("central %s r%d", m, round)),
				c.publisher(t, m, "prov", fmt.Sprintf("province %s r%d", m, round))}
		}
		start := time.Now()
		late := map[int]string{}
		for time.Since(start) < relayBothDeadline {
			clear(late)
			for i, p := range pairs {
				why := receivesFrom(p.prov, p.central, 50) + receivesFrom(p.central, p.prov, 50)
				if why != "" {
					late[i] = why + "; relay " + relayCounters(c, fmt.Sprintf("m%d", i+1))
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
		// Everyone leaves: the links close, and the next round opens them again.
		for _, p := range pairs {
			p.central.Leave()
			p.prov.Leave()
		}
		eventually(t, 10*time.Second, func() string {
			if n := len(c.sig.RelayStats()["local"]); n != 0 {
				return fmt.Sprintf("%d relay peers still open on central after everyone left", n)
			}
			return ""
		})
	}
	if len(failures) > 0 {
		t.Fatalf("%d of %d relay links did not carry media both ways within %v:\n%s", len(failures), meetings*rounds,
			relayBothDeadline, strings.Join(failures, "\n"))
	}
}

// relayCounters describes both ends of meeting's relay link between central and the
// province bridge (the province's as of its last heartbeat).
func relayCounters(c *cascade, meeting string) string {
	var out []string
	for on, sts := range c.sig.RelayStats() {
		for _, st := range sts {
			if st.Peer.Relay.Meeting == ids.MeetingID(meeting) {
				out = append(out, fmt.Sprintf("%s→%s sent %d received %d", on, st.Peer.Relay.Bridge, st.PacketsSent, st.PacketsRecv))
			}
		}
	}
	if len(out) == 0 {
		return "none open"
	}
	return strings.Join(out, ", ")
}

