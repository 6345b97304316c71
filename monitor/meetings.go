package monitor

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/httpapi"
	"github.com/cau-project/cau/rooms"
)

// The console's meetings: before a meeting, the pre-meeting check (which of its sites
// joined the test session, and their grades); during it, the live roll call.
//
//	GET /api/v1/monitor/meetings       the meetings in their test window or live now
//	GET /api/v1/monitor/meetings/{id}  one of them with every site: joined, grade, roll call
//
// "Joined" and the grade come from the monitor's current endpoints (an endpoint whose
// token names the site is connected to the meeting; the grade is the worst of them); the
// first join, drops and connected time come from the roll call (the store's attendance).

// MaxMeetings bounds the meetings listed at once (the store is asked for every meeting
// not yet ended; only those open now are kept).
const MaxMeetings = 100

// meetingTimeout bounds the store reads of one request.
const meetingTimeout = 2 * time.Second

// MeetingView is a meeting open now (test window or live), with its sites' counts.
type MeetingView struct {
	ID          string             `json:"id"`
	Title       string             `json:"title"`
	State       rooms.MeetingState `json:"state"` // testing or live
	ChairSite   string             `json:"chair_site"`
	WindowStart string             `json:"window_start"` // RFC 3339, +07:00
	Start       string             `json:"start"`
	End         string             `json:"end"`
	Sites       int                `json:"sites"`  // sites of the meeting
	Joined      int                `json:"joined"` // of them, with an endpoint connected now
	Bad         int                `json:"bad"`    // of the joined ones, graded poor or lost
}

// MeetingSite is one site of a meeting in the check or the roll call.
type MeetingSite struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Level string `json:"level"`
	Chair bool   `json:"chair,omitempty"`
	// Joined: an endpoint of the site is connected to the meeting now; Endpoints counts them.
	Joined    bool  `json:"joined"`
	Endpoints int   `json:"endpoints"`
	Grade     Grade `json:"grade"` // worst of those endpoints' (unknown if none or not yet measured)
	// From the roll call: first join (RFC 3339, +07:00; empty if never), drops during the
	// meeting, and the time connected so far.
	FirstJoined      string `json:"first_joined,omitempty"`
	Drops            int    `json:"drops"`
	ConnectedSeconds int64  `json:"connected_seconds"`
}

// MeetingDetail is a meeting with every site, missing and poor/lost sites first.
type MeetingDetail struct {
	MeetingView
	SiteList []MeetingSite `json:"site_list"`
}

// errNoSchedule is answered when the monitor was built without a store.
var errNoSchedule = errors.New("no meeting schedule: the server has no store")

// presence is what the monitor's endpoints say of one site in one meeting.
type presence struct {
	n     int
	grade Grade
}

// presenceOf indexes the current endpoints of the given meetings by meeting and site.
func (m *Monitor) presenceOf(meetings map[string]bool) map[string]map[string]presence {
	out := make(map[string]map[string]presence, len(meetings))
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, e := range m.endpoints {
		if !meetings[k.meeting] {
			continue
		}
		bySite := out[k.meeting]
		if bySite == nil {
			bySite = map[string]presence{}
			out[k.meeting] = bySite
		}
		site := e.link.Participant.Site
		p, ok := bySite[site]
		if !ok {
			p.grade = GradeUnknown
		}
		p.n++
		p.grade = Worst(p.grade, e.grade)
		bySite[site] = p
	}
	return out
}

// openMeetings returns the meetings in their test window or live at now, by start.
func (m *Monitor) openMeetings(ctx context.Context, now time.Time) ([]rooms.Meeting, error) {
	all, err := m.cfg.Store.Meetings(ctx, now)
	if err != nil {
		return nil, err
	}
	out := make([]rooms.Meeting, 0, min(len(all), MaxMeetings))
	for _, mt := range all {
		if st := mt.StateAt(now); st == rooms.StateTesting || st == rooms.StateLive {
			out = append(out, mt)
			if len(out) == MaxMeetings {
				break
			}
		}
	}
	return out, nil
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(rooms.Zone()).Format(time.RFC3339)
}

func (m *Monitor) meetingView(mt rooms.Meeting, now time.Time, bySite map[string]presence) MeetingView {
	v := MeetingView{ID: mt.ID, Title: mt.Title, State: mt.StateAt(now), ChairSite: mt.ChairSite,
		WindowStart: rfc3339(mt.WindowStart()), Start: rfc3339(mt.Start), End: rfc3339(mt.End), Sites: len(mt.Sites)}
	for _, s := range mt.Sites {
		if p, ok := bySite[s]; ok {
			v.Joined++
			if p.grade >= GradePoor {
				v.Bad++
			}
		}
	}
	return v
}

// Meetings lists the meetings open at now (test window or live) with their counts.
func (m *Monitor) Meetings(ctx context.Context, now time.Time) ([]MeetingView, error) {
	if m.cfg.Store == nil {
		return nil, errNoSchedule
	}
	open, err := m.openMeetings(ctx, now)
	if err != nil {
		return nil, err
	}
	ids := make(map[string]bool, len(open))
	for _, mt := range open {
		ids[mt.ID] = true
	}
	pres := m.presenceOf(ids)
	out := make([]MeetingView, 0, len(open))
	for _, mt := range open {
		out = append(out, m.meetingView(mt, now, pres[mt.ID]))
	}
	return out, nil
}

// MeetingCheck returns one open meeting's pre-meeting check or live roll call; false
// when the meeting does not exist or is not open at now.
func (m *Monitor) MeetingCheck(ctx context.Context, id string, now time.Time) (MeetingDetail, bool, error) {
	if m.cfg.Store == nil {
		return MeetingDetail{}, false, errNoSchedule
	}
	mt, err := m.cfg.Store.Meeting(ctx, id)
	if errors.Is(err, rooms.ErrNotFound) {
		return MeetingDetail{}, false, nil
	}
	if err != nil {
		return MeetingDetail{}, false, err
	}
	if st := mt.StateAt(now); st != rooms.StateTesting && st != rooms.StateLive {
		return MeetingDetail{}, false, nil
	}
	events, err := m.cfg.Store.Attendance(ctx, id)
	if err != nil {
		return MeetingDetail{}, false, err
	}
	recs, err := rooms.BuildRollCall(mt, events, now)
	if err != nil {
		return MeetingDetail{}, false, err
	}
	byRec := make(map[string]*rooms.SiteRecord, len(recs))
	for i := range recs {
		byRec[recs[i].Site] = &recs[i]
	}
	bySite := m.presenceOf(map[string]bool{id: true})[id]
	d := MeetingDetail{MeetingView: m.meetingView(mt, now, bySite), SiteList: make([]MeetingSite, 0, len(mt.Sites))}
	for _, s := range mt.Sites {
		ms := MeetingSite{ID: s, Name: s, Level: UnknownSite, Chair: s == mt.ChairSite, Grade: GradeUnknown}
		if m.Tree() != nil {
			if site, ok := m.Tree().Site(s); ok {
				ms.Name, ms.Level = site.Name, string(site.Level)
			}
		}
		if p, ok := bySite[s]; ok {
			ms.Joined, ms.Endpoints, ms.Grade = true, p.n, p.grade
		}
		if r := byRec[s]; r != nil {
			ms.FirstJoined, ms.Drops, ms.ConnectedSeconds = rfc3339(r.FirstJoined), r.Drops, int64(r.Connected/time.Second)
		}
		d.SiteList = append(d.SiteList, ms)
	}
	slices.SortStableFunc(d.SiteList, compareMeetingSites)
	return d, true, nil
}

// compareMeetingSites puts missing sites first, then joined ones worst grade first,
// then by name.
func compareMeetingSites(a, b MeetingSite) int {
	if a.Joined != b.Joined {
		if !a.Joined {
			return -1
		}
		return 1
	}
	return cmp.Or(cmp.Compare(b.Grade, a.Grade), cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
}

func (h *api) meetings(w http.ResponseWriter, r *http.Request, _ *auth.Claims) {
	ctx, cancel := context.WithTimeout(r.Context(), meetingTimeout)
	defer cancel()
	list, err := h.m.Meetings(ctx, time.Now())
	if err != nil {
		writeMeetingError(w, err)
		return
	}
	writeJSON(w, list)
}

func (h *api) meeting(w http.ResponseWriter, r *http.Request, _ *auth.Claims) {
	ctx, cancel := context.WithTimeout(r.Context(), meetingTimeout)
	defer cancel()
	d, ok, err := h.m.MeetingCheck(ctx, r.PathValue("id"), time.Now())
	switch {
	case err != nil:
		writeMeetingError(w, err)
	case !ok:
		httpapi.WriteError(w, http.StatusNotFound, httpapi.CodeNotFound, "no such meeting open now (test window or live)")
	default:
		writeJSON(w, d)
	}
}

func writeMeetingError(w http.ResponseWriter, err error) {
	if errors.Is(err, errNoSchedule) {
		httpapi.WriteError(w, http.StatusServiceUnavailable, httpapi.CodeUnavailable, err.Error())
		return
	}
	httpapi.WriteError(w, http.StatusInternalServerError, httpapi.CodeInternal, "meetings: "+err.Error())
}
