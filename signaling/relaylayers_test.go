package signaling_test

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestMixedViewsAcrossTheCascade: the publisher's bridge is a province's (over the
// control socket), two watchers at central, beyond the relay link: one shows the camera
// as a thumbnail, the other as a large tile. Each receives its own layer (the thumbnail's
// watcher no longer gets the top layer just because the other needs it), and the link
// carries exactly those two layers, as the province bridge reports (relay_stats). When
// the large tile shrinks, the link carries the low layer alone; when the thumbnail grows,
// the top crosses again for it.
func TestMixedViewsAcrossTheCascade(t *testing.T) {
	c := startCascade(t, "prov")
	const meeting = "m-mixed-views"
	pub, stream := provinceCamera(t, c, meeting)
	small := c.join(t, meeting, "central", "thumbnail")
	large := c.join(t, meeting, "central", "large tile")
	eventually(t, 30*time.Second, func() string { return receivesFrom(small, pub, 20) })
	eventually(t, 30*time.Second, func() string { return receivesFrom(large, pub, 20) })

	showTile(t, small, pub, 200)
	showTile(t, large, pub, 1000)
	eventually(t, 30*time.Second, receivesMainly(small, stream, 0))
	eventually(t, 60*time.Second, receivesMainly(large, stream, 2))
	eventually(t, 20*time.Second, linkCarries(c, "br-prov", stream, 0, 2))

	// The large tile shrinks to a thumbnail: the low layer alone crosses.
	showTile(t, large, pub, 200)
	eventually(t, 30*time.Second, receivesMainly(large, stream, 0))
	eventually(t, 20*time.Second, linkCarries(c, "br-prov", stream, 0))
	// The thumbnail grows: the top crosses again, for it.
	showTile(t, small, pub, 1000)
	eventually(t, 60*time.Second, receivesMainly(small, stream, 2))
	eventually(t, 20*time.Second, linkCarries(c, "br-prov", stream, 0, 2))
	if w := watchLayers(large, stream, time.Second); w.main() != 0 || w[2] > 0 {
		t.Errorf("the watcher whose tile shrank receives %v (low, middle, top packets in 1 s), want the low layer", w)
	}
}

// linkCarries checks that bridge's relay link carries stream at exactly layers, as the
// bridge reports it in its heartbeats.
func linkCarries(c *cascade, bridge, stream string, layers ...int) func() string {
	return func() string {
		var seen []string
		for _, rs := range c.sig.RelayStats()[bridge] {
			for _, l := range rs.Layers {
				if l.Key.String() != stream {
					continue
				}
				if slices.Equal(l.Carried, layers) {
					return ""
				}
				seen = append(seen, fmt.Sprintf("%s carries %v", rs.Peer, l.Carried))
			}
		}
		return fmt.Sprintf("%s's relay links: %v; want %v of %s", bridge, seen, layers, stream)
	}
}
