package rooms

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Site tree errors. [LoadTree] and [NewTree] wrap these with the offending site.
var (
	// ErrEmptyID means a site (or endpoint, or meeting) has no id.
	ErrEmptyID = errors.New("empty id")
	// ErrDuplicateSite means two sites share an id.
	ErrDuplicateSite = errors.New("duplicate site id")
	// ErrUnknownParent means a site names a parent that is not in the tree.
	ErrUnknownParent = errors.New("unknown parent")
	// ErrCycle means following parents from some site comes back to it.
	ErrCycle = errors.New("cycle in site tree")
	// ErrNoRoot means no site is without a parent.
	ErrNoRoot = errors.New("site tree has no root")
	// ErrMultipleRoots means more than one site is without a parent.
	ErrMultipleRoots = errors.New("site tree has more than one root")
	// ErrUnknownLevel means a site's level is not one of the known levels.
	ErrUnknownLevel = errors.New("unknown level")
	// ErrLevelOrder means a site sits above its parent's level (a province under a commune).
	ErrLevelOrder = errors.New("site level above its parent's")
	// ErrSyntax means the site-tree YAML is malformed or has unknown keys.
	ErrSyntax = errors.New("site tree syntax")
	// ErrUnknownSite means a site id is not in the tree.
	ErrUnknownSite = errors.New("unknown site")
)

// Registry, meeting and schedule errors.
var (
	// ErrNotFound means the store has no such record.
	ErrNotFound = errors.New("not found")
	// ErrExists means a record with that id already exists.
	ErrExists = errors.New("already exists")
	// ErrInvalidEndpoint means an endpoint fails validation (kind, site).
	ErrInvalidEndpoint = errors.New("invalid endpoint")
	// ErrInvalidMeeting means a meeting fails validation; the wrapping error says why.
	ErrInvalidMeeting = errors.New("invalid meeting")
	// ErrConflict means a meeting overlaps another at a site with a room device.
	// The concrete error is a [*ConflictError].
	ErrConflict = errors.New("schedule conflict")
	// ErrMeetingOver means the meeting is ended or cancelled and cannot change.
	ErrMeetingOver = errors.New("meeting is over")
	// ErrBusy means the store gave up after too many concurrent-update retries.
	ErrBusy = errors.New("store busy: too many concurrent updates")
	// ErrClosed means the store has been closed.
	ErrClosed = errors.New("store closed")
)

// Floor-control errors. Forbidden actions come as a [*ForbiddenError], which matches
// [ErrForbidden] with errors.Is.
var (
	// ErrForbidden means the actor's role (or site) may not take that action.
	ErrForbidden = errors.New("forbidden")
	// ErrWrongMode means the action does not exist in the meeting's floor mode
	// (e.g. granting the floor in discussion mode, where everyone may speak).
	ErrWrongMode = errors.New("not allowed in this floor mode")
	// ErrNotParticipant means the site is not one of the meeting's sites.
	ErrNotParticipant = errors.New("site is not in the meeting")
	// ErrNoRequest means the site has no pending floor request.
	ErrNoRequest = errors.New("no floor request from site")
	// ErrNotSpeaking means the site does not hold the floor.
	ErrNotSpeaking = errors.New("site does not hold the floor")
	// ErrEnded means the meeting's floor is closed: the chair ended the meeting.
	ErrEnded = errors.New("meeting ended")
	// ErrInvalidMode means a floor mode string is not one of the modes.
	ErrInvalidMode = errors.New("invalid floor mode")
	// ErrInvalidMedia means a directed-mode grant gives neither mic nor camera.
	ErrInvalidMedia = errors.New("invalid media grant")
)

// Roll call errors.
var (
	// ErrInvalidEvent means an attendance event fails validation.
	ErrInvalidEvent = errors.New("invalid attendance event")
)

// ConflictError is returned (wrapped) when a meeting would put a site that has a room
// device into two overlapping meetings. Windows include each meeting's test window.
// It matches [ErrConflict] with errors.Is.
type ConflictError struct {
	// Meeting is the id of the meeting being scheduled.
	Meeting string
	// With is the id and WithTitle the title of the meeting already holding the sites.
	With, WithTitle string
	// Sites are the room sites found in both meetings (at most the first few are listed
	// by Error; all are here), in the new meeting's order.
	Sites []string
	// From and To bound the overlap of the two windows, in UTC.
	From, To time.Time
}

// Error names the other meeting, the shared sites and the overlap in Vietnam time.
func (e *ConflictError) Error() string {
	shown := e.Sites
	more := ""
	if len(shown) > 5 {
		more = fmt.Sprintf(" and %d more", len(shown)-5)
		shown = shown[:5]
	}
	return fmt.Sprintf("%v: site(s) %s%s already in meeting %s %q from %s to %s",
		ErrConflict, strings.Join(shown, ", "), more, e.With, e.WithTitle,
		FormatLocal(e.From), FormatLocal(e.To))
}

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// ForbiddenError says which role (at which site) may not take which action, and why.
// It matches [ErrForbidden] with errors.Is.
type ForbiddenError struct {
	// Action is what was attempted.
	Action Action
	// Role and Site describe the actor.
	Role Role
	Site string
	// Reason is a short human explanation ("only the chair may grant the floor").
	Reason string
}

// Error reads like "forbidden: technician at gl may not end: only the chair ...".
func (e *ForbiddenError) Error() string {
	who := string(e.Role)
	if e.Site != "" {
		who += " at " + e.Site
	}
	s := fmt.Sprintf("%v: %s may not %s", ErrForbidden, who, e.Action)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Unwrap makes errors.Is(err, ErrForbidden) true.
func (e *ForbiddenError) Unwrap() error { return ErrForbidden }
