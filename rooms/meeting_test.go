package rooms_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/rooms"
)

// vn is Vietnam's zone as the tz database has it; the tests fail if the host lacks it,
// rather than silently comparing the fallback with itself.
func vn(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Ho_Chi_Minh")
	if err != nil {
		t.Fatalf("tz database: %v", err)
	}
	return loc
}

// at is a wall-clock time in Vietnam on 2 March 2026 (a Monday).
func at(t testing.TB, hour, min int) time.Time {
	return time.Date(2026, 3, 2, hour, min, 0, 0, vn(t))
}

func TestZone(t *testing.T) {
	loc := rooms.Zone()
	for _, month := range []time.Month{time.January, time.April, time.July, time.October} {
		ts := time.Date(2026, month, 15, 8, 0, 0, 0, loc)
		if _, off := ts.Zone(); off != 7*3600 {
			t.Errorf("%s: offset %d, want +7h (no DST)", month, off)
		}
		if got := ts.UTC().Hour(); got != 1 {
			t.Errorf("%s: 08:00 local is %02d:00 UTC, want 01:00", month, got)
		}
	}
	if got := rooms.FormatLocal(time.Date(2026, 3, 2, 1, 30, 0, 0, time.UTC)); got != "2026-03-02 08:30 (UTC+07:00)" {
		t.Errorf("FormatLocal = %q", got)
	}
	if got := rooms.FormatLocal(time.Time{}); got != "" {
		t.Errorf("FormatLocal(zero) = %q", got)
	}
	for _, in := range []string{"2026-03-02 08:30", "2026-03-02T08:30", "2026-03-02 08:30:00"} {
		got, err := rooms.ParseLocal(in)
		if err != nil || !got.Equal(time.Date(2026, 3, 2, 1, 30, 0, 0, time.UTC)) || got.Location() != time.UTC {
			t.Errorf("ParseLocal(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := rooms.ParseLocal("02/03/2026 8h30"); err == nil {
		t.Error("ParseLocal accepted a bad layout")
	}
	// Crossing midnight UTC: 06:00 in Hà Nội is 23:00 the previous day in UTC.
	if got := at(t, 6, 0).UTC(); got.Day() != 1 || got.Hour() != 23 {
		t.Errorf("06:00 +07 = %v UTC", got)
	}
}

func TestMeetingNormalize(t *testing.T) {
	m := rooms.Meeting{ID: "m", Title: "x", ChairSite: "p1", Sites: []string{"p1", "p1-d1", "p1", "p1-d1"},
		Start: at(t, 8, 0), End: at(t, 10, 0)}.Normalize()
	if m.Start.Location() != time.UTC || m.Start.Hour() != 1 || m.End.Hour() != 3 {
		t.Errorf("times not UTC: %v %v", m.Start, m.End)
	}
	if m.TestWindow != time.Hour || m.Mode != rooms.ModeDiscussion || m.State != rooms.StateScheduled {
		t.Errorf("defaults: %v %v %v", m.TestWindow, m.Mode, m.State)
	}
	if !slices.Equal(m.Sites, []string{"p1", "p1-d1"}) {
		t.Errorf("sites %v", m.Sites)
	}
	if !m.WindowStart().Equal(at(t, 7, 0)) {
		t.Errorf("WindowStart %v", m.WindowStart())
	}
}

func TestMeetingValidate(t *testing.T) {
	tree := mustTree(t, fourLevelYAML)
	good := rooms.Meeting{ID: "m1", Title: "Giao ban", ChairSite: "p1", Sites: []string{"p1", "p1-d1-c1"},
		Start: at(t, 8, 0), End: at(t, 10, 0)}.Normalize()
	tests := []struct {
		name   string
		change func(*rooms.Meeting)
		want   error
		inMsg  string
	}{
		{"ok", func(*rooms.Meeting) {}, nil, ""},
		{"no id", func(m *rooms.Meeting) { m.ID = "" }, rooms.ErrEmptyID, ""},
		{"no title", func(m *rooms.Meeting) { m.Title = "" }, rooms.ErrInvalidMeeting, "title"},
		{"end before start", func(m *rooms.Meeting) { m.End = at(t, 7, 0) }, rooms.ErrInvalidMeeting, "not after start"},
		{"end equals start", func(m *rooms.Meeting) { m.End = m.Start }, rooms.ErrInvalidMeeting, "not after start"},
		{"no times", func(m *rooms.Meeting) { m.Start = time.Time{} }, rooms.ErrInvalidMeeting, "required"},
		{"too long", func(m *rooms.Meeting) { m.End = m.Start.Add(25 * time.Hour) }, rooms.ErrInvalidMeeting, "longer"},
		{"bad mode", func(m *rooms.Meeting) { m.Mode = "lecture" }, rooms.ErrInvalidMeeting, "lecture"},
		{"negative test window", func(m *rooms.Meeting) { m.TestWindow = -time.Minute }, rooms.ErrInvalidMeeting, "test window"},
		{"derived state", func(m *rooms.Meeting) { m.State = rooms.StateLive }, rooms.ErrInvalidMeeting, "state"},
		{"no sites", func(m *rooms.Meeting) { m.Sites = nil }, rooms.ErrInvalidMeeting, "no sites"},
		{"no chair", func(m *rooms.Meeting) { m.ChairSite = "" }, rooms.ErrInvalidMeeting, "chair"},
		{"chair not among sites", func(m *rooms.Meeting) { m.ChairSite = "tw" }, rooms.ErrInvalidMeeting, "chair site tw"},
		{"unknown site", func(m *rooms.Meeting) { m.Sites = append(m.Sites, "p9") }, rooms.ErrUnknownSite, "p9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := good
			m.Sites = slices.Clone(good.Sites)
			tc.change(&m)
			err := m.Validate(tree)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.inMsg) {
				t.Errorf("err %q does not mention %q", err, tc.inMsg)
			}
		})
	}
}

func TestStateAt(t *testing.T) {
	m := rooms.Meeting{Start: at(t, 8, 0), End: at(t, 10, 0), State: rooms.StateScheduled}
	tests := []struct {
		now  time.Time
		want rooms.MeetingState
	}{
		{at(t, 6, 59), rooms.StateScheduled},
		{at(t, 7, 0), rooms.StateTesting},
		{at(t, 7, 59), rooms.StateTesting},
		{at(t, 8, 0), rooms.StateLive},
		{at(t, 9, 59), rooms.StateLive},
		{at(t, 10, 0), rooms.StateEnded},
	}
	for _, tc := range tests {
		if got := m.StateAt(tc.now); got != tc.want {
			t.Errorf("StateAt(%s) = %s, want %s", tc.now.Format("15:04"), got, tc.want)
		}
	}
	m.State = rooms.StateCancelled
	if got := m.StateAt(at(t, 9, 0)); got != rooms.StateCancelled {
		t.Errorf("cancelled meeting StateAt = %s", got)
	}
}

func TestConflicts(t *testing.T) {
	roomSites := rooms.RoomSites([]rooms.Endpoint{
		{ID: "r-tw", Site: "tw", Kind: rooms.KindRoom},
		{ID: "r-p1", Site: "p1", Kind: rooms.KindRoom},
		{ID: "r-c1", Site: "p1-d1-c1", Kind: rooms.KindRoom},
		{ID: "l-c2", Site: "p1-d1-c2", Kind: rooms.KindLaptop}, // laptops never conflict
	})
	existing := rooms.Meeting{ID: "a", Title: "Họp A", ChairSite: "tw", Sites: []string{"tw", "p1", "p1-d1-c1", "p1-d1-c2"},
		Start: at(t, 8, 0), End: at(t, 10, 0)}.Normalize() // window 07:00–10:00
	mk := func(start, end time.Time, tw time.Duration, sites ...string) rooms.Meeting {
		return rooms.Meeting{ID: "b", Title: "Họp B", ChairSite: sites[0], Sites: sites, Start: start, End: end, TestWindow: tw}.Normalize()
	}
	tests := []struct {
		name     string
		m        rooms.Meeting
		existing func(*rooms.Meeting)
		want     []string // shared room sites; nil: no conflict
		from, to time.Time
	}{
		{name: "test window overlaps meeting", m: mk(at(t, 10, 0), at(t, 11, 0), 0, "p1", "p2"),
			want: []string{"p1"}, from: at(t, 9, 0), to: at(t, 10, 0)},
		{name: "after, test window adjacent", m: mk(at(t, 11, 0), at(t, 12, 0), 0, "p1")},
		{name: "short test window fits", m: mk(at(t, 10, 30), at(t, 12, 0), 30*time.Minute, "p1")},
		{name: "before, overlapping the other's test window", m: mk(at(t, 5, 0), at(t, 7, 30), 0, "p1-d1-c1", "tw"),
			want: []string{"p1-d1-c1", "tw"}, from: at(t, 7, 0), to: at(t, 7, 30)},
		{name: "before, ending as the other's test window opens", m: mk(at(t, 5, 0), at(t, 7, 0), 0, "tw")},
		{name: "inside", m: mk(at(t, 8, 30), at(t, 9, 0), 0, "p2", "p1"),
			want: []string{"p1"}, from: at(t, 7, 30), to: at(t, 9, 0)},
		{name: "only a laptop site shared", m: mk(at(t, 8, 0), at(t, 9, 0), 0, "p1-d1-c2", "p2")},
		{name: "no shared site", m: mk(at(t, 8, 0), at(t, 9, 0), 0, "p2", "p2-d1")},
		{name: "other cancelled", m: mk(at(t, 8, 0), at(t, 9, 0), 0, "p1"),
			existing: func(e *rooms.Meeting) { e.State = rooms.StateCancelled }},
		{name: "other ended", m: mk(at(t, 8, 0), at(t, 9, 0), 0, "p1"),
			existing: func(e *rooms.Meeting) { e.State = rooms.StateEnded }},
		{name: "same meeting (reschedule)", m: mk(at(t, 8, 0), at(t, 9, 0), 0, "p1"),
			existing: func(e *rooms.Meeting) { e.ID = "b" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := existing
			if tc.existing != nil {
				tc.existing(&e)
			}
			got := rooms.Conflicts(tc.m, []rooms.Meeting{e}, roomSites)
			if tc.want == nil {
				if len(got) != 0 {
					t.Fatalf("conflict %v, want none", got[0])
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("%d conflicts, want 1", len(got))
			}
			c := got[0]
			if c.With != "a" || c.Meeting != "b" || !slices.Equal(c.Sites, tc.want) || !c.From.Equal(tc.from) || !c.To.Equal(tc.to) {
				t.Errorf("conflict %+v, want sites %v from %v to %v", c, tc.want, tc.from, tc.to)
			}
			var err error = c
			var ce *rooms.ConflictError
			if !errors.Is(err, rooms.ErrConflict) || !errors.As(err, &ce) {
				t.Errorf("error %v is not a ConflictError", err)
			}
			if msg := c.Error(); !strings.Contains(msg, `"Họp A"`) || !strings.Contains(msg, "(UTC+07:00)") {
				t.Errorf("message %q should name the meeting and local times", msg)
			}
		})
	}
}

func TestNextMeeting(t *testing.T) {
	room := rooms.Endpoint{ID: "r1", Site: "p1-d1-c1", Kind: rooms.KindRoom}
	m := func(id string, start, end time.Time, state rooms.MeetingState, sites ...string) rooms.Meeting {
		return rooms.Meeting{ID: id, Title: id, ChairSite: sites[0], Sites: sites, Start: start, End: end, State: state}.Normalize()
	}
	morning := m("morning", at(t, 8, 0), at(t, 10, 0), "", "p1", "p1-d1-c1")
	afternoon := m("afternoon", at(t, 14, 0), at(t, 16, 0), "", "tw", "p1-d1-c1")
	elsewhere := m("elsewhere", at(t, 7, 0), at(t, 8, 0), "", "p2")
	cancelled := m("cancelled", at(t, 11, 0), at(t, 12, 0), rooms.StateCancelled, "p1-d1-c1")
	all := []rooms.Meeting{afternoon, cancelled, elsewhere, morning}
	tests := []struct {
		now     time.Time
		want    string
		connect bool
	}{
		{at(t, 6, 0), "morning", false},
		{at(t, 6, 59), "morning", false},
		{at(t, 7, 0), "morning", true}, // test window opens
		{at(t, 9, 59), "morning", true},
		{at(t, 10, 0), "afternoon", false}, // morning over; cancelled one skipped
		{at(t, 13, 0), "afternoon", true},
		{at(t, 15, 0), "afternoon", true},
		{at(t, 16, 0), "", false},
	}
	for _, tc := range tests {
		p, ok := rooms.NextMeeting(room, all, tc.now)
		if ok != (tc.want != "") || p.Meeting.ID != tc.want || p.ConnectNow != tc.connect {
			t.Errorf("at %s: next %q connect %v ok %v; want %q connect %v", tc.now.In(vn(t)).Format("15:04"),
				p.Meeting.ID, p.ConnectNow, ok, tc.want, tc.connect)
		}
		if ok && (!p.ConnectAt.Equal(p.Meeting.WindowStart()) || !p.DisconnectAt.Equal(p.Meeting.End)) {
			t.Errorf("plan times %v %v", p.ConnectAt, p.DisconnectAt)
		}
	}
	// A laptop at a site in two overlapping meetings is sent to the one that is on now.
	laptop := rooms.Endpoint{ID: "l1", Site: "p1", Kind: rooms.KindLaptop}
	early := m("early", at(t, 9, 0), at(t, 12, 0), "", "p1")
	p, _ := rooms.NextMeeting(laptop, []rooms.Meeting{early, morning}, at(t, 7, 30))
	if p.Meeting.ID != "morning" || !p.ConnectNow {
		t.Errorf("overlap: got %q connect %v, want morning now", p.Meeting.ID, p.ConnectNow)
	}
}

func TestValidateEndpoint(t *testing.T) {
	tree := mustTree(t, fourLevelYAML)
	tests := []struct {
		e    rooms.Endpoint
		want error
	}{
		{rooms.Endpoint{ID: "r", Site: "p1", Kind: rooms.KindRoom}, nil},
		{rooms.Endpoint{ID: "l", Site: "p1", Kind: rooms.KindLaptop}, nil},
		{rooms.Endpoint{Site: "p1", Kind: rooms.KindRoom}, rooms.ErrEmptyID},
		{rooms.Endpoint{ID: "x", Site: "p1", Kind: "phone"}, rooms.ErrInvalidEndpoint},
		{rooms.Endpoint{ID: "x", Kind: rooms.KindRoom}, rooms.ErrInvalidEndpoint},
		{rooms.Endpoint{ID: "x", Site: "zz", Kind: rooms.KindRoom}, rooms.ErrUnknownSite},
		{rooms.Endpoint{ID: "s", Site: "p1", Kind: rooms.KindRoom, SIPURI: "sip:room@10.1.2.3:5060;transport=tcp"}, nil},
		{rooms.Endpoint{ID: "s", Site: "p1", Kind: rooms.KindLaptop, SIPURI: "sip:room@10.1.2.3"}, rooms.ErrInvalidEndpoint},
		{rooms.Endpoint{ID: "s", Site: "p1", Kind: rooms.KindRoom, SIPURI: "tel:+8424"}, rooms.ErrInvalidEndpoint},
		{rooms.Endpoint{ID: "s", Site: "p1", Kind: rooms.KindRoom, SIPURI: "sip:room@10.1.2.3\r\nVia: x"}, rooms.ErrInvalidEndpoint},
		{rooms.Endpoint{ID: "s", Site: "p1", Kind: rooms.KindRoom, SIPURI: "sip:@host"}, rooms.ErrInvalidEndpoint},
	}
	for _, tc := range tests {
		err := rooms.ValidateEndpoint(tc.e, tree)
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("ValidateEndpoint(%+v) = %v, want %v", tc.e, err, tc.want)
		}
	}
}

// TestDialsAt: the SIP gateway calls a room with a SIP URI from its meeting's test window
// to its end, not before, not after, and never for an ended or cancelled meeting.
func TestDialsAt(t *testing.T) {
	start := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	m := rooms.Meeting{ID: "m", Sites: []string{"a", "b"}, Start: start, End: start.Add(time.Hour),
		TestWindow: 15 * time.Minute, State: rooms.StateScheduled}
	cancelled := m
	cancelled.ID, cancelled.State = "c", rooms.StateCancelled
	eps := []rooms.Endpoint{
		{ID: "ra", Site: "a", Kind: rooms.KindRoom, SIPURI: "sip:ra@10.0.0.1"},
		{ID: "rb", Site: "b", Kind: rooms.KindRoom},                            // dials in by itself
		{ID: "rc", Site: "c", Kind: rooms.KindRoom, SIPURI: "sip:rc@10.0.0.2"}, // not in the meeting
	}
	for _, tc := range []struct {
		at   time.Time
		want int
	}{{start.Add(-16 * time.Minute), 0}, {start.Add(-15 * time.Minute), 1}, {start.Add(30 * time.Minute), 1},
		{start.Add(time.Hour), 0}} {
		got := rooms.DialsAt([]rooms.Meeting{m, cancelled}, eps, tc.at)
		if len(got) != tc.want || (tc.want == 1 && (got[0].Meeting != "m" || got[0].Endpoint.ID != "ra")) {
			t.Errorf("at %v: %+v, want %d dial(s) of ra into m", tc.at, got, tc.want)
		}
	}
}
