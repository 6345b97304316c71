package signaling

import (
	"fmt"
	"testing"

	"github.com/cau-project/cau/rooms"
)

// TestWantsSlotsBySize: an endpoint that leaves slots to the server receives in them from
// Config.SlotsFrom on: sites in the schedule, or participants with the one joining (a
// site may join with several endpoints); never with -1.
func TestWantsSlotsBySize(t *testing.T) {
	sites := func(n int) *rooms.Meeting {
		m := &rooms.Meeting{}
		for i := range n {
			m.Sites = append(m.Sites, fmt.Sprintf("site-%d", i))
		}
		return m
	}
	adHoc := func(n int) *meeting {
		m := &meeting{participants: map[string]*session{}}
		for i := range n {
			m.participants[fmt.Sprint(i)] = &session{}
		}
		return m
	}
	for _, c := range []struct {
		name  string
		from  int
		sched *rooms.Meeting
		here  int
		want  bool
	}{
		{"province meeting, default", 0, sites(258), 0, true},
		{"district meeting, default", 0, sites(12), 0, false},
		{"just the default's size", 0, sites(DefaultSlotsFrom), 0, true},
		{"small schedule, many endpoints joined", 0, sites(DefaultSlotsFrom - 1), 40, true},
		{"small schedule, few joined", 0, sites(DefaultSlotsFrom - 1), 5, false},
		{"ad hoc, small", 0, nil, 5, false},
		{"ad hoc, the 24th joins", 0, nil, DefaultSlotsFrom - 1, true},
		{"configured lower", 2, sites(3), 0, true},
		{"never", -1, sites(3400), 3400, false},
	} {
		if got := adHoc(c.here).wantsSlots(c.from, c.sched); got != c.want {
			t.Errorf("%s: wantsSlots(%d) = %v, want %v", c.name, c.from, got, c.want)
		}
	}
}
