package monitor

import "github.com/cau-project/cau/protocol"

// LayerCounts counts video streams by the simulcast layer a link forwards them at: low,
// middle, top, and those Last-N pauses (nothing is sent). Issue 10: the console shows,
// per site and per relay link, what each link carries.
type LayerCounts struct {
	Low    int `json:"low"`
	Middle int `json:"middle"`
	Top    int `json:"top"`
	Paused int `json:"paused"`
}

// layerNames are the Prometheus label values of the four counts.
var layerNames = [...]string{"low", "middle", "top", "paused"}

func (c LayerCounts) values() [4]int { return [4]int{c.Low, c.Middle, c.Top, c.Paused} }

// Total is the number of streams counted.
func (c LayerCounts) Total() int { return c.Low + c.Middle + c.Top + c.Paused }

// add counts ls into c.
func (c *LayerCounts) add(ls []protocol.StreamLayer) {
	for _, l := range ls {
		switch {
		case l.Paused:
			c.Paused++
		case l.Layer <= 0:
			c.Low++
		case l.Layer == 1:
			c.Middle++
		default:
			c.Top++
		}
	}
}

// lowestEstimate keeps the lowest non-zero estimate: the weakest link of several.
func lowestEstimate(cur, v float64) float64 {
	if v <= 0 {
		return cur
	}
	if cur <= 0 || v < cur {
		return v
	}
	return cur
}
