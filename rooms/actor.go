package rooms

// Role is what an actor may do. The values match the token roles of package auth;
// this package does not import auth, callers convert.
type Role string

// Roles, from most to least privileged (see DESIGN.md "Roles").
const (
	RoleAdmin       Role = "admin"       // operators: registry, schedule, everything
	RoleTechnician  Role = "technician"  // console and tests; no meeting control
	RoleChair       Role = "chair"       // controls the floor, from the chair site
	RoleParticipant Role = "participant" // an official's browser
	RoleRoom        Role = "room"        // a site's meeting-room device
)

// Valid reports whether r is one of the roles above.
func (r Role) Valid() bool {
	switch r {
	case RoleAdmin, RoleTechnician, RoleChair, RoleParticipant, RoleRoom:
		return true
	}
	return false
}

// Actor is who asks for an action: a role, the site they act from, and a name for the
// audit log. Callers build it from a verified token.
type Actor struct {
	Name string `json:"name,omitempty"`
	Role Role   `json:"role"`
	Site string `json:"site,omitempty"`
}

// Action names a floor-control or meeting action; the audit log uses the same names.
type Action string

// Floor and meeting actions.
const (
	ActionRequest  Action = "request"  // a site asks for the floor
	ActionWithdraw Action = "withdraw" // a site withdraws its request
	ActionGrant    Action = "grant"    // the chair gives a site the floor (mic/camera)
	ActionDeny     Action = "deny"     // the chair refuses a request
	ActionRevoke   Action = "revoke"   // the chair takes the floor back
	ActionYield    Action = "yield"    // a speaking site gives the floor back
	ActionMuteAll  Action = "mute_all" // the chair mutes every site
	ActionSetMode  Action = "set_mode" // the chair switches floor mode
	ActionEnd      Action = "end"      // the chair ends the meeting
)
