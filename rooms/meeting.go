package rooms

import (
	"fmt"
	"slices"
	"time"
)

// Mode is a meeting's floor-control mode.
type Mode string

// Floor modes, as used by Vietnamese products (see DESIGN.md).
const (
	// ModeDiscussion: every site may use mic and camera.
	ModeDiscussion Mode = "discussion"
	// ModeTraining: sites request the floor; the chair grants it to one site at a time.
	ModeTraining Mode = "training"
	// ModeDirected: the chair grants mic and/or camera to one or more sites.
	ModeDirected Mode = "directed"
)

// Valid reports whether m is one of the modes.
func (m Mode) Valid() bool { return m == ModeDiscussion || m == ModeTraining || m == ModeDirected }

// MeetingState is where a meeting is in its life. Only scheduled, ended and cancelled
// are stored; testing and live are derived from the clock by [Meeting.StateAt].
type MeetingState string

// Meeting states.
const (
	StateScheduled MeetingState = "scheduled" // booked, test window not yet open
	StateTesting   MeetingState = "testing"   // inside the test window before start
	StateLive      MeetingState = "live"      // between start and end
	StateEnded     MeetingState = "ended"     // past its end, or ended by the chair
	StateCancelled MeetingState = "cancelled" // called off; frees its sites
)

// DefaultTestWindow is how long before start technicians join the test session (and
// room devices connect): 60 minutes, as provincial guides require.
const DefaultTestWindow = 60 * time.Minute

// MaxMeetingLength bounds a meeting's length; longer events are booked as sessions.
const MaxMeetingLength = 24 * time.Hour

// Meeting is a scheduled conference. Times are UTC once normalised; show them with
// [FormatLocal].
type Meeting struct {
	ID        string `json:"id"`
	Title     string `json:"title"`
	ChairSite string `json:"chair_site"`
	// Sites are the participating sites, the chair site among them, each once.
	Sites []string  `json:"sites"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Mode  Mode      `json:"mode"`
	// TestWindow is how long before Start the meeting's sites connect for tests; it
	// counts for conflicts. Zero means DefaultTestWindow.
	TestWindow time.Duration `json:"test_window"`
	State      MeetingState  `json:"state"`
}

// Normalize returns a copy with times in UTC, defaults filled in (test window, mode
// discussion, state scheduled) and duplicate sites removed (first one kept). It does
// not validate.
func (m Meeting) Normalize() Meeting {
	m.Start, m.End = m.Start.UTC(), m.End.UTC()
	if m.TestWindow == 0 {
		m.TestWindow = DefaultTestWindow
	}
	if m.Mode == "" {
		m.Mode = ModeDiscussion
	}
	if m.State == "" {
		m.State = StateScheduled
	}
	seen := make(map[string]bool, len(m.Sites))
	sites := make([]string, 0, len(m.Sites))
	for _, s := range m.Sites {
		if !seen[s] {
			seen[s] = true
			sites = append(sites, s)
		}
	}
	m.Sites = sites
	return m
}

// Validate checks the meeting on its own and against the tree (which may be nil to skip
// the site checks): an id and a title, end after start and at most MaxMeetingLength
// later, a known mode and state, a positive test window, at least one site, every site
// in the tree, and the chair among the sites. Errors wrap ErrInvalidMeeting (and
// ErrUnknownSite for unknown sites).
func (m Meeting) Validate(tree *Tree) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("meeting %s: %w: %s", m.ID, ErrInvalidMeeting, fmt.Sprintf(format, args...))
	}
	switch {
	case m.ID == "":
		return fmt.Errorf("meeting %q: %w: %w", m.Title, ErrInvalidMeeting, ErrEmptyID)
	case m.Title == "":
		return bad("no title")
	case m.Start.IsZero() || m.End.IsZero():
		return bad("start and end are required")
	case !m.End.After(m.Start):
		return bad("end %s is not after start %s", FormatLocal(m.End), FormatLocal(m.Start))
	case m.End.Sub(m.Start) > MaxMeetingLength:
		return bad("lasts %s, longer than %s", m.End.Sub(m.Start), MaxMeetingLength)
	case !m.Mode.Valid():
		return bad("%v %q (want discussion, training or directed)", ErrInvalidMode, m.Mode)
	case m.TestWindow < 0 || m.TestWindow > MaxMeetingLength:
		return bad("test window %s out of range", m.TestWindow)
	case m.State != StateScheduled && m.State != StateEnded && m.State != StateCancelled:
		return bad("state %q cannot be stored", m.State)
	case len(m.Sites) == 0:
		return bad("no sites")
	case m.ChairSite == "":
		return bad("no chair site")
	case !slices.Contains(m.Sites, m.ChairSite):
		return bad("chair site %s is not among the meeting's sites", m.ChairSite)
	}
	if tree != nil {
		for _, s := range m.Sites {
			if !tree.Has(s) {
				return fmt.Errorf("meeting %s: %w: %w %q", m.ID, ErrInvalidMeeting, ErrUnknownSite, s)
			}
		}
	}
	return nil
}

// testWindow is TestWindow with the default applied.
func (m Meeting) testWindow() time.Duration {
	if m.TestWindow == 0 {
		return DefaultTestWindow
	}
	return m.TestWindow
}

// WindowStart is when the meeting's sites start connecting: Start minus the test window.
func (m Meeting) WindowStart() time.Time { return m.Start.Add(-m.testWindow()) }

// Over reports whether the meeting was ended or cancelled (by state, not by clock).
func (m Meeting) Over() bool { return m.State == StateEnded || m.State == StateCancelled }

// StateAt derives the meeting's state at now from its stored state and its times.
func (m Meeting) StateAt(now time.Time) MeetingState {
	switch {
	case m.Over():
		return m.State
	case !now.Before(m.End):
		return StateEnded
	case !now.Before(m.Start):
		return StateLive
	case !now.Before(m.WindowStart()):
		return StateTesting
	}
	return StateScheduled
}

// HasSite reports whether site takes part in the meeting.
func (m Meeting) HasSite(site string) bool { return slices.Contains(m.Sites, site) }

// Conflicts lists the meetings in others that would share a room site with m while
// both are on, test windows included: windows [WindowStart, End) overlap and both hold
// a site in roomSites. Over meetings and m itself (same id) are ignored. One error per
// conflicting meeting, in the order of others.
func Conflicts(m Meeting, others []Meeting, roomSites map[string]bool) []*ConflictError {
	mine := make(map[string]bool)
	for _, s := range m.Sites {
		if roomSites[s] {
			mine[s] = true
		}
	}
	if len(mine) == 0 || m.Over() {
		return nil
	}
	var out []*ConflictError
	for _, o := range others {
		if o.ID == m.ID || o.Over() {
			continue
		}
		from, to := later(m.WindowStart(), o.WindowStart()), earlier(m.End, o.End)
		if !from.Before(to) {
			continue
		}
		theirs := make(map[string]bool)
		for _, s := range o.Sites {
			if mine[s] {
				theirs[s] = true
			}
		}
		if len(theirs) == 0 {
			continue
		}
		c := &ConflictError{Meeting: m.ID, With: o.ID, WithTitle: o.Title, From: from, To: to}
		for _, s := range m.Sites {
			if theirs[s] {
				c.Sites = append(c.Sites, s)
			}
		}
		out = append(out, c)
	}
	return out
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Plan tells a meeting-room device what to do: which meeting is next for it, when to
// connect (start of the test window) and disconnect (end), and whether to be connected
// now.
type Plan struct {
	Meeting      Meeting   `json:"meeting"`
	ConnectAt    time.Time `json:"connect_at"`
	DisconnectAt time.Time `json:"disconnect_at"`
	ConnectNow   bool      `json:"connect_now"`
}

// NextMeeting returns the endpoint's next meeting among meetings and whether it should
// be connected at now (inside the test window or the meeting). A meeting the endpoint
// should be in now wins over a later one; otherwise the earliest to open wins. It
// reports false when no meeting that includes the endpoint's site is still to come.
func NextMeeting(e Endpoint, meetings []Meeting, now time.Time) (Plan, bool) {
	var best *Meeting
	bestNow := false
	for i := range meetings {
		m := &meetings[i]
		if m.Over() || !now.Before(m.End) || !m.HasSite(e.Site) {
			continue
		}
		in := !now.Before(m.WindowStart())
		switch {
		case best == nil,
			in && !bestNow,
			in == bestNow && (m.WindowStart().Before(best.WindowStart()) ||
				m.WindowStart().Equal(best.WindowStart()) && m.ID < best.ID):
			best, bestNow = m, in
		}
	}
	if best == nil {
		return Plan{}, false
	}
	return Plan{Meeting: *best, ConnectAt: best.WindowStart(), DisconnectAt: best.End, ConnectNow: bestNow}, true
}
