package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cau-project/cau/internal/httpapi"
	"github.com/cau-project/cau/rooms"
)

// MaxIDBytes bounds meeting and endpoint ids: they travel in URLs and file names.
const MaxIDBytes = 128

// selections is one rooms.Selection or a list of them ("select": {...} or [{...}, …]).
type selections []rooms.Selection

// UnmarshalJSON accepts an object or an array of objects, strictly.
func (s *selections) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if len(b) > 0 && b[0] == '[' {
		var list []rooms.Selection
		if err := dec.Decode(&list); err != nil {
			return fmt.Errorf("select: want an object {root, levels, depth, exclude} or a list of them: %v", err)
		}
		*s = list
		return nil
	}
	var one rooms.Selection
	if err := dec.Decode(&one); err != nil {
		return fmt.Errorf("select: want an object {root, levels, depth, exclude} or a list of them: %v", err)
	}
	*s = selections{one}
	return nil
}

// meetingBody is what POST /meetings and PATCH /meetings/{id} take. In a PATCH, absent
// fields keep their values; giving sites or select replaces the site list.
type meetingBody struct {
	ID        string      `json:"id"`
	Title     *string     `json:"title"`
	ChairSite *string     `json:"chair_site"`
	Sites     []string    `json:"sites"`
	Select    selections  `json:"select"`
	Start     *string     `json:"start"`
	End       *string     `json:"end"`
	Mode      *rooms.Mode `json:"mode"`
	// TestWindow is a Go duration ("60m", "1h30m"); default 60 minutes.
	TestWindow *string `json:"test_window"`
}

// viewMeeting is m as the API shows it at now; times in Vietnam time.
func (a *API) viewMeeting(m rooms.Meeting, now time.Time, withSites bool) httpapi.Meeting {
	v := httpapi.Meeting{ID: m.ID, Title: m.Title, ChairSite: m.ChairSite, SiteCount: len(m.Sites),
		Start: local(m.Start), End: local(m.End), ConnectAt: local(m.WindowStart()), Mode: string(m.Mode),
		TestWindow: m.TestWindow.String(), State: string(m.State), Status: string(m.StateAt(now))}
	if t := a.Tree(); t != nil {
		v.ChairName = t.Name(m.ChairSite)
	}
	if withSites {
		v.Sites = m.Sites
	}
	return v
}

// parseTime reads RFC 3339 ("2026-03-02T08:00:00+07:00"), or a wall-clock time without
// offset, taken as Vietnam time ("2026-03-02T08:00").
func parseTime(field, s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := rooms.ParseLocal(s); err == nil {
		return t, nil
	}
	return time.Time{}, invalid("%s %q: want RFC 3339, e.g. 2026-03-02T08:00:00+07:00", field, s)
}

// validID accepts 1..MaxIDBytes bytes of UTF-8 with no spaces, controls or slashes.
func validID(id string) bool {
	if id == "" || len(id) > MaxIDBytes || !utf8.ValidString(id) {
		return false
	}
	for _, c := range id {
		if unicode.IsControl(c) || unicode.IsSpace(c) || c == '/' || c == '\\' || c == '?' || c == '#' || c == '%' {
			return false
		}
	}
	return true
}

// apply fills m from b. patch keeps what b leaves out; otherwise sites default to the
// selection and the chair to the first selection's root (or first site).
func (a *API) apply(m *rooms.Meeting, b meetingBody, patch bool) error {
	t := a.Tree()
	if t == nil {
		return invalid("%v", errNoTree)
	}
	if b.Title != nil {
		m.Title = *b.Title
	}
	if b.Mode != nil {
		m.Mode = *b.Mode
	}
	for _, f := range []struct {
		name string
		s    *string
		dst  *time.Time
	}{{"start", b.Start, &m.Start}, {"end", b.End, &m.End}} {
		if f.s == nil {
			continue
		}
		v, err := parseTime(f.name, *f.s)
		if err != nil {
			return err
		}
		*f.dst = v
	}
	if b.TestWindow != nil {
		d, err := time.ParseDuration(*b.TestWindow)
		if err != nil || d <= 0 {
			return invalid("test_window %q: want a positive duration such as 60m or 1h30m", *b.TestWindow)
		}
		m.TestWindow = d
	}
	for _, sel := range b.Select {
		for _, l := range sel.Levels {
			if !l.Valid() {
				return invalid("select: %v %q (want central, province, district or commune)", rooms.ErrUnknownLevel, l)
			}
		}
	}
	if b.Sites != nil || len(b.Select) > 0 {
		sites, err := t.Select(b.Select...)
		if err != nil {
			return invalid("%v", err)
		}
		m.Sites = append(sites, b.Sites...)
	}
	switch {
	case b.ChairSite != nil:
		m.ChairSite = *b.ChairSite
	case !patch && len(b.Select) > 0:
		m.ChairSite = b.Select[0].Root
	case !patch && len(m.Sites) > 0:
		m.ChairSite = m.Sites[0]
	}
	if m.ChairSite != "" && !slices.Contains(m.Sites, m.ChairSite) {
		m.Sites = append([]string{m.ChairSite}, m.Sites...) // the chair always takes part
	}
	return nil
}

// listMeetings: GET /api/v1/meetings[?all=1|from=…][&to=…][&site=…][&status=…] —
// meetings not yet ended by default, without their site lists.
func (a *API) listMeetings(w http.ResponseWriter, r *http.Request, _ *principal) {
	q := r.URL.Query()
	now := a.now()
	endAfter := now
	var to time.Time
	if all, _ := strconv.ParseBool(q.Get("all")); all {
		endAfter = time.Time{}
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"from", &endAfter}, {"to", &to}} {
		if s := q.Get(f.name); s != "" {
			v, err := parseTime(f.name, s)
			if err != nil {
				a.fail(w, r, badRequest("%v", err))
				return
			}
			*f.dst = v
		}
	}
	ms, err := a.store.Meetings(r.Context(), endAfter)
	if err != nil {
		a.fail(w, r, fmt.Errorf("list meetings: %w", err))
		return
	}
	site, status := q.Get("site"), rooms.MeetingState(q.Get("status"))
	out := httpapi.MeetingList{Meetings: []httpapi.Meeting{}}
	for _, m := range ms {
		if (!to.IsZero() && !m.Start.Before(to)) || (site != "" && !m.HasSite(site)) ||
			(status != "" && m.StateAt(now) != status) {
			continue
		}
		out.Meetings = append(out.Meetings, a.viewMeeting(m, now, false))
	}
	writeJSON(w, http.StatusOK, out)
}

// getMeeting: GET /api/v1/meetings/{id}.
func (a *API) getMeeting(w http.ResponseWriter, r *http.Request, _ *principal) {
	m, err := a.store.Meeting(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, fmt.Errorf("meeting: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, a.viewMeeting(m, a.now(), true))
}

// scheduleMeeting: POST /api/v1/meetings.
func (a *API) scheduleMeeting(w http.ResponseWriter, r *http.Request, p *principal) {
	var b meetingBody
	if err := decodeJSON(w, r, MaxBodyBytes, &b); err != nil {
		a.fail(w, r, err)
		return
	}
	if b.ID != "" && !validID(b.ID) {
		a.fail(w, r, invalid("meeting id %q: want 1 to %d characters without spaces, slashes, ?, # or %%", b.ID, MaxIDBytes))
		return
	}
	m := rooms.Meeting{ID: b.ID}
	if err := a.apply(&m, b, false); err != nil {
		a.fail(w, r, err)
		return
	}
	a.book(w, r, p, "schedule", m, http.StatusCreated, a.sched.Schedule)
}

// rescheduleMeeting: PATCH /api/v1/meetings/{id}.
func (a *API) rescheduleMeeting(w http.ResponseWriter, r *http.Request, p *principal) {
	var b meetingBody
	id, err := decodeUpdate(w, r, "meeting", &b, &b.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	m, err := a.store.Meeting(r.Context(), id)
	if err != nil {
		a.fail(w, r, fmt.Errorf("reschedule: %w", err))
		return
	}
	if err := a.apply(&m, b, true); err != nil {
		a.fail(w, r, err)
		return
	}
	a.book(w, r, p, "reschedule", m, http.StatusOK, a.sched.Reschedule)
}

// book saves m through do (the scheduler's Schedule or Reschedule) as p's action,
// audited, and answers with the meeting as stored: status, and its Location when
// created.
func (a *API) book(w http.ResponseWriter, r *http.Request, p *principal, action string, m rooms.Meeting, status int,
	do func(context.Context, rooms.Meeting) (rooms.Meeting, error),
) {
	ctx, audited := a.auditWith(r, p, action, m.ID, fmt.Sprintf("%q, %s to %s", m.Title,
		rooms.FormatLocal(m.Start), rooms.FormatLocal(m.End)))
	m, err := do(ctx, m)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	audited()
	if status == http.StatusCreated {
		w.Header().Set("Location", Prefix+"meetings/"+url.PathEscape(m.ID))
	}
	writeJSON(w, status, a.viewMeeting(m, a.now(), true))
}

// cancelMeeting: POST /api/v1/meetings/{id}/cancel.
func (a *API) cancelMeeting(w http.ResponseWriter, r *http.Request, p *principal) {
	a.finish(w, r, p, "cancel", a.sched.Cancel, func(rooms.Meeting) string { return "" })
}

// endMeeting: POST /api/v1/meetings/{id}/end.
func (a *API) endMeeting(w http.ResponseWriter, r *http.Request, p *principal) {
	a.finish(w, r, p, "end", a.sched.End, func(rooms.Meeting) string {
		return "ended at " + rooms.FormatLocal(a.now())
	})
}

// finish cancels or ends the meeting {id} with do, audits it as action with detail's
// words, and answers with the meeting.
func (a *API) finish(w http.ResponseWriter, r *http.Request, p *principal, action string,
	do func(context.Context, string) (rooms.Meeting, error), detail func(rooms.Meeting) string) {
	// The entry is written with the change, so its detail is known before: the meeting
	// as it stands (its title) and the action.
	id := r.PathValue("id")
	before, err := a.store.Meeting(r.Context(), id)
	if err != nil {
		a.fail(w, r, fmt.Errorf("%s: %w", action, err))
		return
	}
	ctx, audited := a.auditWith(r, p, action, id, strings.TrimSpace(fmt.Sprintf("%q %s", before.Title, detail(before))))
	m, err := do(ctx, id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	audited()
	writeJSON(w, http.StatusOK, a.viewMeeting(m, a.now(), false))
}

// getRollCall: GET /api/v1/meetings/{id}/rollcall[?format=csv] — who joined, when, for
// how long, with how many drops and what link grade; as of now, or of the meeting's end
// once it is over.
func (a *API) getRollCall(w http.ResponseWriter, r *http.Request, _ *principal) {
	format := r.URL.Query().Get("format")
	if format != "" && format != "json" && format != "csv" {
		a.fail(w, r, badRequest("format %q: want json or csv", format))
		return
	}
	m, err := a.store.Meeting(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, fmt.Errorf("roll call: %w", err))
		return
	}
	events, err := a.store.Attendance(r.Context(), m.ID)
	if err != nil {
		a.fail(w, r, fmt.Errorf("roll call: %w", err))
		return
	}
	now := a.now()
	asOf := now
	if asOf.After(m.End) {
		asOf = m.End
	}
	recs, err := rooms.BuildRollCall(m, events, asOf)
	if err != nil {
		a.fail(w, r, fmt.Errorf("roll call: %w", err))
		return
	}
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment",
			map[string]string{"filename": "rollcall-" + m.ID + ".csv"}))
		if err := rooms.WriteRollCallCSV(w, recs, a.Tree()); err != nil {
			a.log.Warn("roll call CSV cut short", "meeting", m.ID, "err", err)
		}
		return
	}
	t := a.Tree()
	out := httpapi.RollCall{Meeting: a.viewMeeting(m, now, false), AsOf: local(asOf),
		Records: make([]httpapi.RollCallRecord, 0, len(recs))}
	for _, rec := range recs {
		v := httpapi.RollCallRecord{Site: rec.Site, Attended: rec.Attended(),
			ConnectedSeconds: int64(rec.Connected / time.Second), Drops: rec.Drops,
			WorstGrade: string(rec.WorstGrade), LastGrade: string(rec.LastGrade), Online: rec.Online,
			Endpoints: rec.Endpoints}
		if t != nil {
			if s, ok := t.Site(rec.Site); ok {
				v.Name, v.Level = s.Name, string(s.Level)
			}
		}
		if !rec.FirstJoined.IsZero() {
			fj := local(rec.FirstJoined)
			v.FirstJoined = &fj
		}
		if !rec.LastLeft.IsZero() {
			ll := local(rec.LastLeft)
			v.LastLeft = &ll
		}
		out.Summary.Sites++
		if v.Attended {
			out.Summary.Attended++
		}
		if v.Online {
			out.Summary.Online++
		}
		out.Records = append(out.Records, v)
	}
	writeJSON(w, http.StatusOK, out)
}
