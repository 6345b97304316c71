package rooms

import (
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
)

// Grade is a site's link quality as the monitoring grades it (DOMAIN.md §4.3).
type Grade string

// Link grades, from best to worst.
const (
	GradeGood Grade = "good"
	GradeFair Grade = "fair"
	GradePoor Grade = "poor"
	GradeLost Grade = "lost" // no media for several seconds
)

// Severity orders grades: good 1 … lost 4; 0 for none or unknown.
func (g Grade) Severity() int {
	switch g {
	case GradeGood:
		return 1
	case GradeFair:
		return 2
	case GradePoor:
		return 3
	case GradeLost:
		return 4
	}
	return 0
}

// Valid reports whether g is one of the grades.
func (g Grade) Valid() bool { return g.Severity() > 0 }

// EventKind is what an attendance event reports.
type EventKind string

// Attendance event kinds.
const (
	EventConnected    EventKind = "connected"    // an endpoint of the site joined
	EventDisconnected EventKind = "disconnected" // it left or was lost
	EventGrade        EventKind = "grade"        // its link was graded
)

// AttendanceEvent is one observation of an endpoint of a site in a meeting.
type AttendanceEvent struct {
	Time      time.Time `json:"time"`
	MeetingID string    `json:"meeting_id"`
	Site      string    `json:"site"`
	Endpoint  string    `json:"endpoint"`
	Kind      EventKind `json:"kind"`
	Grade     Grade     `json:"grade,omitempty"` // for EventGrade
}

// Validate checks the event has what its kind needs.
func (e AttendanceEvent) Validate() error {
	bad := func(why string) error { return fmt.Errorf("%w: %s", ErrInvalidEvent, why) }
	switch {
	case e.MeetingID == "" || e.Site == "" || e.Endpoint == "":
		return bad("meeting, site and endpoint are required")
	case e.Time.IsZero():
		return bad("no time")
	case e.Kind == EventGrade && !e.Grade.Valid():
		return bad(fmt.Sprintf("grade %q (want good, fair, poor or lost)", e.Grade))
	case e.Kind != EventConnected && e.Kind != EventDisconnected && e.Kind != EventGrade:
		return bad(fmt.Sprintf("kind %q", e.Kind))
	}
	return nil
}

// SiteRecord is a site's roll-call line. A site counts as connected while at least one
// of its endpoints is.
type SiteRecord struct {
	Site string `json:"site"`
	// FirstJoined is when the site first connected; zero if it never did.
	FirstJoined time.Time `json:"first_joined,omitzero"`
	// LastLeft is when the site last lost its last endpoint; zero if never.
	LastLeft time.Time `json:"last_left,omitzero"`
	// Connected is the total time the site was connected (open spans count to asOf).
	Connected time.Duration `json:"connected"`
	// Drops counts the times the site lost all its endpoints between the meeting's
	// start and end (leaving during the test window or after the end is not a drop).
	Drops int `json:"drops"`
	// WorstGrade and LastGrade are over all of the site's endpoints; empty if none seen.
	WorstGrade Grade `json:"worst_grade,omitempty"`
	LastGrade  Grade `json:"last_grade,omitempty"`
	// Online says whether the site is connected at the last event.
	Online bool `json:"online"`
	// Endpoints counts the distinct endpoints seen.
	Endpoints int `json:"endpoints"`
}

// Attended reports whether the site connected at all.
func (r SiteRecord) Attended() bool { return !r.FirstJoined.IsZero() }

// siteTrack is a site's record in the making.
type siteTrack struct {
	rec    SiteRecord
	online map[string]bool // endpoints connected now
	seen   map[string]bool // endpoints ever seen
	since  time.Time       // when the site came online (valid while len(online) > 0)
	last   time.Time       // latest event time applied
}

// RollCall folds attendance events into per-site records for one meeting. It is not
// safe for concurrent use; keep it under the caller's lock.
type RollCall struct {
	meeting Meeting
	sites   map[string]*siteTrack
	order   []string // the meeting's sites, then sites seen that were not invited
}

// NewRollCall starts an empty roll call listing every site of m.
func NewRollCall(m Meeting) *RollCall {
	rc := &RollCall{meeting: m, sites: make(map[string]*siteTrack, len(m.Sites))}
	for _, s := range m.Sites {
		rc.track(s)
	}
	return rc
}

func (rc *RollCall) track(site string) *siteTrack {
	if t, ok := rc.sites[site]; ok {
		return t
	}
	t := &siteTrack{rec: SiteRecord{Site: site}, online: map[string]bool{}, seen: map[string]bool{}}
	rc.sites[site] = t
	rc.order = append(rc.order, site)
	return t
}

// Add applies one event. Events should come in time order per site; one older than the
// site's latest is applied at the latest time, so durations never go negative.
func (rc *RollCall) Add(e AttendanceEvent) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("roll call %s: %w", rc.meeting.ID, err)
	}
	t := rc.track(e.Site)
	now := e.Time.UTC()
	if now.Before(t.last) {
		now = t.last
	}
	t.last = now
	if !t.seen[e.Endpoint] {
		t.seen[e.Endpoint] = true
		t.rec.Endpoints++
	}
	switch e.Kind {
	case EventConnected:
		if len(t.online) == 0 {
			t.since = now
			if t.rec.FirstJoined.IsZero() {
				t.rec.FirstJoined = now
			}
		}
		t.online[e.Endpoint] = true
	case EventDisconnected:
		if !t.online[e.Endpoint] {
			return nil
		}
		delete(t.online, e.Endpoint)
		if len(t.online) == 0 {
			t.rec.Connected += now.Sub(t.since)
			t.rec.LastLeft = now
			if !now.Before(rc.meeting.Start) && now.Before(rc.meeting.End) {
				t.rec.Drops++
			}
		}
	case EventGrade:
		t.rec.LastGrade = e.Grade
		if e.Grade.Severity() > t.rec.WorstGrade.Severity() {
			t.rec.WorstGrade = e.Grade
		}
	}
	t.rec.Online = len(t.online) > 0
	return nil
}

// Records returns one record per site, the meeting's sites first in their order, with
// sites still connected counted up to asOf.
func (rc *RollCall) Records(asOf time.Time) []SiteRecord {
	out := make([]SiteRecord, 0, len(rc.order))
	for _, s := range rc.order {
		t := rc.sites[s]
		r := t.rec
		if r.Online && asOf.After(t.since) {
			r.Connected += asOf.Sub(t.since)
		}
		out = append(out, r)
	}
	return out
}

// BuildRollCall sorts events by time (stably) and folds them into records; see
// [RollCall]. Events for other meetings are ignored.
func BuildRollCall(m Meeting, events []AttendanceEvent, asOf time.Time) ([]SiteRecord, error) {
	sorted := slices.Clone(events)
	slices.SortStableFunc(sorted, func(a, b AttendanceEvent) int { return a.Time.Compare(b.Time) })
	rc := NewRollCall(m)
	for _, e := range sorted {
		if e.MeetingID != m.ID {
			continue
		}
		if err := rc.Add(e); err != nil {
			return nil, err
		}
	}
	return rc.Records(asOf), nil
}

// RollCallCSVHeader is the roll-call CSV's first line; the column order is stable.
var RollCallCSVHeader = []string{
	"site", "name", "level", "attended", "first_joined", "last_left",
	"connected_seconds", "drops", "worst_grade", "last_grade", "online", "endpoints",
}

// WriteRollCallCSV writes records as RFC 4180 CSV (CRLF line ends, fields quoted when
// they hold commas, quotes or line breaks), with [RollCallCSVHeader] first. Times are
// RFC 3339 in Vietnam time (+07:00); names and levels come from tree (may be nil).
func WriteRollCallCSV(w io.Writer, recs []SiteRecord, tree *Tree) error {
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.In(Zone()).Format(time.RFC3339)
	}
	if err := cw.Write(RollCallCSVHeader); err != nil {
		return fmt.Errorf("write roll call: %w", err)
	}
	for _, r := range recs {
		name, level := "", ""
		if tree != nil {
			if s, ok := tree.Site(r.Site); ok {
				name, level = s.Name, string(s.Level)
			}
		}
		row := []string{
			r.Site, name, level, strconv.FormatBool(r.Attended()), ts(r.FirstJoined), ts(r.LastLeft),
			strconv.FormatInt(int64(r.Connected/time.Second), 10), strconv.Itoa(r.Drops),
			string(r.WorstGrade), string(r.LastGrade), strconv.FormatBool(r.Online), strconv.Itoa(r.Endpoints),
		}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("write roll call: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write roll call: %w", err)
	}
	return nil
}
