package rooms

import (
	"fmt"
	"slices"
	"time"
)

// Media says which of a site's streams the chair lets through.
type Media struct {
	Mic    bool `json:"mic"`
	Camera bool `json:"camera"`
}

// MicAndCamera is the full floor: what training mode always grants.
var MicAndCamera = Media{Mic: true, Camera: true}

// Grant is a site holding the floor.
type Grant struct {
	Site   string    `json:"site"`
	Mic    bool      `json:"mic"`
	Camera bool      `json:"camera"`
	Since  time.Time `json:"since"`
}

// FloorRequest is a site waiting for the floor ("raising its hand").
type FloorRequest struct {
	Site string    `json:"site"`
	At   time.Time `json:"at"`
}

// FloorState is the floor of one meeting at one moment: a plain value, safe to copy
// after [FloorState.Clone], stored as is and sent to every node and endpoint.
type FloorState struct {
	MeetingID string `json:"meeting_id"`
	// Mode starts as the meeting's mode; the chair may switch it during the meeting.
	Mode      Mode   `json:"mode"`
	ChairSite string `json:"chair_site"`
	// Speakers hold the floor, in the order granted (training: at most one).
	Speakers []Grant `json:"speakers,omitempty"`
	// Requests wait for the floor, oldest first.
	Requests []FloorRequest `json:"requests,omitempty"`
	// Previous is the site that spoke last before the current speakers (layouts keep
	// it in the second window).
	Previous string `json:"previous,omitempty"`
	// MuteEpoch counts "mute all" orders: endpoints mute their mics when it changes
	// (in discussion mode they may unmute again).
	MuteEpoch uint64 `json:"mute_epoch,omitempty"`
	// Ended is set when the chair ends the meeting; the floor then refuses everything.
	Ended bool `json:"ended,omitempty"`
	// Version increases by one with every change, so nodes can drop stale updates.
	Version   uint64    `json:"version"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Clone returns a deep copy.
func (s FloorState) Clone() FloorState {
	s.Speakers = slices.Clone(s.Speakers)
	s.Requests = slices.Clone(s.Requests)
	return s
}

// Speaking returns the grant held by site, if any.
func (s FloorState) Speaking(site string) (Grant, bool) {
	for _, g := range s.Speakers {
		if g.Site == site {
			return g, true
		}
	}
	return Grant{}, false
}

// Requested reports whether site waits for the floor.
func (s FloorState) Requested(site string) bool {
	return slices.ContainsFunc(s.Requests, func(r FloorRequest) bool { return r.Site == site })
}

// Allowed says what a site of the meeting may send now: everything for the chair site
// and, in discussion mode, for every site; otherwise what its grant allows; nothing
// once the meeting has ended. The caller checks that site is in the meeting.
func (s FloorState) Allowed(site string) Media {
	switch {
	case s.Ended:
		return Media{}
	case site == s.ChairSite, s.Mode == ModeDiscussion:
		return MicAndCamera
	}
	if g, ok := s.Speaking(site); ok {
		return Media{Mic: g.Mic, Camera: g.Camera}
	}
	return Media{}
}

// Floor is the floor-control state machine of one meeting. Its methods take the actor
// (role and site) and return a [*ForbiddenError] for actions the role may not take,
// and errors matching ErrWrongMode, ErrNotParticipant, ErrNoRequest, ErrNotSpeaking or
// ErrEnded for actions that make no sense now. A failed action changes nothing.
//
// A Floor is not safe for concurrent use: stores run it inside one transaction (see
// [FloorStore.UpdateFloor]); in-process callers keep it under their own lock.
type Floor struct {
	meeting Meeting
	sites   map[string]bool // the meeting's sites
	state   FloorState
	now     func() time.Time
}

// NewFloor returns a fresh floor for m: its mode, nobody speaking, nothing requested.
func NewFloor(m Meeting) *Floor {
	return RestoreFloor(m, FloorState{})
}

// RestoreFloor returns the floor of m in state s (as stored); a zero s means fresh.
func RestoreFloor(m Meeting, s FloorState) *Floor {
	f := &Floor{meeting: m, sites: make(map[string]bool, len(m.Sites)), state: s.Clone(), now: time.Now}
	for _, id := range m.Sites {
		f.sites[id] = true
	}
	if f.state.MeetingID == "" {
		f.state.MeetingID = m.ID
		f.state.Mode = m.Mode
		if f.state.Mode == "" {
			f.state.Mode = ModeDiscussion
		}
	}
	f.state.ChairSite = m.ChairSite
	return f
}

// SetClock replaces the clock used for timestamps (tests).
func (f *Floor) SetClock(now func() time.Time) { f.now = now }

// State returns a copy of the current state.
func (f *Floor) State() FloorState { return f.state.Clone() }

// Update runs fn on f with now as its clock, and returns the state after it and whether
// fn changed the floor (its version moved). It is [FloorStore.UpdateFloor]'s rule, kept
// here so that every store applies it alike: a store writes the state back, and
// announces a ChangeFloor, only when changed; when fn fails, nothing.
func (f *Floor) Update(now func() time.Time, fn func(*Floor) error) (st FloorState, changed bool, err error) {
	f.now = now
	before := f.state.Version
	if err := fn(f); err != nil {
		return FloorState{}, false, err
	}
	st = f.State()
	return st, st.Version != before, nil
}

// changed stamps a change.
func (f *Floor) changed() {
	f.state.Version++
	f.state.UpdatedAt = f.now().UTC()
}

// forbid builds the error for a refused action.
func forbid(a Actor, act Action, reason string) error {
	return &ForbiddenError{Action: act, Role: a.Role, Site: a.Site, Reason: reason}
}

// chair checks that a may control the floor: an admin, or the chair at the chair site.
func (f *Floor) chair(a Actor, act Action) error {
	switch a.Role {
	case RoleAdmin:
		return nil
	case RoleChair:
		if a.Site == f.meeting.ChairSite {
			return nil
		}
		return forbid(a, act, "the chair acts from the chair site "+f.meeting.ChairSite)
	case RoleTechnician:
		return forbid(a, act, "technicians have no meeting control")
	}
	return forbid(a, act, "only the chair may do that")
}

// chairOver checks that a is the chair and that the floor lets act concern site now
// (live).
func (f *Floor) chairOver(a Actor, act Action, site string) error {
	if err := f.chair(a, act); err != nil {
		return err
	}
	return f.live(act, site)
}

// site checks that a may act for its own site (a participant, a room device, or an
// admin naming a site) and that the floor lets that site act now (live).
func (f *Floor) site(a Actor, act Action) error {
	switch {
	case a.Role == RoleTechnician:
		return forbid(a, act, "technicians have no meeting control")
	case a.Role != RoleParticipant && a.Role != RoleRoom && a.Role != RoleAdmin:
		return forbid(a, act, "only a participating site may do that")
	case a.Site == "":
		return forbid(a, act, "no site")
	}
	return f.live(act, a.Site)
}

// live checks the floor is open, the mode controls the floor, and site (if not empty)
// takes part in the meeting.
func (f *Floor) live(act Action, site string) error {
	switch {
	case f.state.Ended:
		return fmt.Errorf("%s: %w", act, ErrEnded)
	case f.state.Mode == ModeDiscussion:
		return fmt.Errorf("%s: %w: in discussion mode every site may speak", act, ErrWrongMode)
	case site != "" && !f.sites[site]:
		return fmt.Errorf("%s: %w: %s", act, ErrNotParticipant, site)
	}
	return nil
}

// dropRequest removes site's request and reports whether there was one.
func (f *Floor) dropRequest(site string) bool {
	n := len(f.state.Requests)
	f.state.Requests = slices.DeleteFunc(f.state.Requests, func(r FloorRequest) bool { return r.Site == site })
	return len(f.state.Requests) < n
}

// dropSpeaker removes site's grant, makes it the previous speaker, and reports whether
// it had one.
func (f *Floor) dropSpeaker(site string) bool {
	n := len(f.state.Speakers)
	f.state.Speakers = slices.DeleteFunc(f.state.Speakers, func(g Grant) bool { return g.Site == site })
	if len(f.state.Speakers) == n {
		return false
	}
	f.state.Previous = site
	return true
}

// clearSpeakers takes the floor from everyone; the last one granted becomes previous.
func (f *Floor) clearSpeakers() {
	if n := len(f.state.Speakers); n > 0 {
		f.state.Previous = f.state.Speakers[n-1].Site
	}
	f.state.Speakers = nil
}

// Request puts the actor's site in the queue for the floor (training and directed
// modes). Asking again, or while speaking, changes nothing; the chair site never
// needs to ask.
func (f *Floor) Request(a Actor) error {
	if err := f.site(a, ActionRequest); err != nil {
		return err
	}
	if _, speaking := f.state.Speaking(a.Site); speaking || a.Site == f.meeting.ChairSite || f.state.Requested(a.Site) {
		return nil
	}
	f.state.Requests = append(f.state.Requests, FloorRequest{Site: a.Site, At: f.now().UTC()})
	f.changed()
	return nil
}

// Withdraw takes the actor's site out of the queue.
func (f *Floor) Withdraw(a Actor) error {
	if err := f.site(a, ActionWithdraw); err != nil {
		return err
	}
	if !f.dropRequest(a.Site) {
		return fmt.Errorf("%s: %w %s", ActionWithdraw, ErrNoRequest, a.Site)
	}
	f.changed()
	return nil
}

// Grant gives site the floor (chair only). In training mode the site gets mic and
// camera and replaces the current speaker, who becomes the previous speaker; media is
// ignored. In directed mode the site gets media (mic and/or camera) alongside the other
// speakers; granting again changes its media. Any request from the site is answered.
func (f *Floor) Grant(a Actor, site string, media Media) error {
	if err := f.chairOver(a, ActionGrant, site); err != nil {
		return err
	}
	if site == f.meeting.ChairSite {
		return nil // the chair site always has the floor
	}
	now := f.now().UTC()
	switch f.state.Mode {
	case ModeTraining:
		if len(f.state.Speakers) == 1 && f.state.Speakers[0].Site == site {
			return nil
		}
		f.clearSpeakers()
		f.state.Speakers = []Grant{{Site: site, Mic: true, Camera: true, Since: now}}
	case ModeDirected:
		if !media.Mic && !media.Camera {
			return fmt.Errorf("%s: %w: grant mic, camera or both (revoke to take the floor back)", ActionGrant, ErrInvalidMedia)
		}
		g := Grant{Site: site, Mic: media.Mic, Camera: media.Camera, Since: now}
		if i := slices.IndexFunc(f.state.Speakers, func(g Grant) bool { return g.Site == site }); i >= 0 {
			if old := f.state.Speakers[i]; old.Mic == g.Mic && old.Camera == g.Camera {
				f.dropRequest(site)
				return nil
			}
			g.Since = f.state.Speakers[i].Since
			f.state.Speakers[i] = g
		} else {
			f.state.Speakers = append(f.state.Speakers, g)
		}
	}
	f.dropRequest(site)
	f.changed()
	return nil
}

// Deny refuses site's pending request (chair only).
func (f *Floor) Deny(a Actor, site string) error {
	if err := f.chairOver(a, ActionDeny, site); err != nil {
		return err
	}
	if !f.dropRequest(site) {
		return fmt.Errorf("%s: %w %s", ActionDeny, ErrNoRequest, site)
	}
	f.changed()
	return nil
}

// Revoke takes the floor back from site (chair only); it becomes the previous speaker.
func (f *Floor) Revoke(a Actor, site string) error {
	if err := f.chairOver(a, ActionRevoke, site); err != nil {
		return err
	}
	if !f.dropSpeaker(site) {
		return fmt.Errorf("%s: %w: %s", ActionRevoke, ErrNotSpeaking, site)
	}
	f.changed()
	return nil
}

// Yield gives the actor's site's floor back; it becomes the previous speaker.
func (f *Floor) Yield(a Actor) error {
	if err := f.site(a, ActionYield); err != nil {
		return err
	}
	if !f.dropSpeaker(a.Site) {
		return fmt.Errorf("%s: %w: %s", ActionYield, ErrNotSpeaking, a.Site)
	}
	f.changed()
	return nil
}

// MuteAll orders every site to mute (chair only): MuteEpoch increases and, outside
// discussion mode, every grant is revoked. Requests stay queued.
func (f *Floor) MuteAll(a Actor) error {
	if err := f.chair(a, ActionMuteAll); err != nil {
		return err
	}
	if f.state.Ended {
		return fmt.Errorf("%s: %w", ActionMuteAll, ErrEnded)
	}
	f.state.MuteEpoch++
	f.clearSpeakers()
	f.changed()
	return nil
}

// SetMode switches the floor mode during the meeting (chair only). Grants end (the last
// speaker becomes previous); switching to discussion also drops the queue.
func (f *Floor) SetMode(a Actor, mode Mode) error {
	if err := f.chair(a, ActionSetMode); err != nil {
		return err
	}
	switch {
	case f.state.Ended:
		return fmt.Errorf("%s: %w", ActionSetMode, ErrEnded)
	case !mode.Valid():
		return fmt.Errorf("%s: %w %q", ActionSetMode, ErrInvalidMode, mode)
	case mode == f.state.Mode:
		return nil
	}
	f.state.Mode = mode
	f.clearSpeakers()
	if mode == ModeDiscussion {
		f.state.Requests = nil
	}
	f.changed()
	return nil
}

// End closes the meeting's floor (chair or admin only): nobody may send any more and
// every later action fails with ErrEnded. Ending twice changes nothing. The caller also
// marks the meeting ended ([Scheduler.End]).
func (f *Floor) End(a Actor) error {
	if err := f.chair(a, ActionEnd); err != nil {
		return err
	}
	if f.state.Ended {
		return nil
	}
	f.state.Ended = true
	f.clearSpeakers()
	f.state.Requests = nil
	f.changed()
	return nil
}
