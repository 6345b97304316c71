package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/cau-project/cau/monitor"
	"github.com/cau-project/cau/rooms"
)

// recordGrades writes every change of an endpoint's link grade into its meeting's roll
// call, so the record kept after the meeting says how each site was heard, not only
// when it was there. It reads the monitor's snapshots until ctx ends.
func recordGrades(ctx context.Context, mon *monitor.Monitor, store rooms.AttendanceStore, log *slog.Logger) {
	last := map[string]monitor.Grade{} // meeting/endpoint → last grade recorded
	for {
		select {
		case <-ctx.Done():
			return
		case <-mon.Next():
		}
		snap := mon.Snapshot()
		if snap == nil {
			continue
		}
		seen := map[string]bool{}
		for site := range snap.Sites {
			d, ok := mon.Detail(site)
			if !ok {
				continue
			}
			for _, e := range d.Endpoints {
				key := e.Meeting + "/" + e.ID
				seen[key] = true
				if prev, ok := last[key]; e.Grade == monitor.GradeUnknown || (ok && prev == e.Grade) {
					continue
				}
				last[key] = e.Grade
				ev := rooms.AttendanceEvent{Time: snap.At.UTC(), MeetingID: e.Meeting, Site: site, Endpoint: e.ID,
					Kind: rooms.EventGrade, Grade: rooms.Grade(e.Grade.String())}
				wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				if err := store.AppendAttendance(wctx, ev); err != nil {
					// An ad hoc meeting has no roll call: not an error worth more than debug.
					log.Debug("roll call grade", "meeting", e.Meeting, "site", site, "err", err)
				}
				cancel()
			}
		}
		for key := range last {
			if !seen[key] {
				delete(last, key)
			}
		}
	}
}
