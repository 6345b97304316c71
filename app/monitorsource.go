package app

import (
	"github.com/cau-project/cau/monitor"
	"github.com/cau-project/cau/signaling"
)

// monitorSource adapts signaling's figures to what the monitor samples, so that monitor
// does not depend on signaling.
type monitorSource struct{ *signaling.Server }

// Links converts signaling's endpoint links to the monitor's.
func (s monitorSource) Links() []monitor.Link {
	in := s.Server.Links()
	out := make([]monitor.Link, len(in))
	for i, l := range in {
		out[i] = monitor.Link{Meeting: l.Meeting, Participant: l.Participant, Bridge: l.Bridge, Joined: l.Joined,
			Up: l.Up, Down: l.Down, Measured: l.Measured, EstimateBps: l.EstimateBps, Layers: l.Layers, SIP: l.SIP}
	}
	return out
}
