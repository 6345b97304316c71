package httpapi

import "time"

// The JSON views of /api/v1/ that both the server (package api) and its clients
// (package apiclient, the CLI, the load tester, the tests) read or write: one Go type per
// view, so the two sides cannot drift apart. Times are in Vietnam time (+07:00) on the
// way out; enumerations (mode, state, level, grade) travel as their lower-case names,
// documented in docs/openapi.yaml.

// Meeting is a meeting as the API shows it (GET /meetings/{id}, the lists, the kiosk's
// plan, the roll call's header).
type Meeting struct {
	ID        string `json:"id"`
	Title     string `json:"title"`
	ChairSite string `json:"chair_site"`
	ChairName string `json:"chair_name,omitempty"`
	// Sites is given in single-meeting answers only; SiteCount always.
	Sites     []string  `json:"sites,omitempty"`
	SiteCount int       `json:"site_count"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	ConnectAt time.Time `json:"connect_at"`
	Mode      string    `json:"mode"`
	// TestWindow is a Go duration string, e.g. "1h0m0s".
	TestWindow string `json:"test_window"`
	// State is the stored state (scheduled, ended, cancelled); Status is the state now
	// (scheduled, testing, live, ended, cancelled).
	State  string `json:"state"`
	Status string `json:"status"`
}

// MeetingList is GET /meetings.
type MeetingList struct {
	Meetings []Meeting `json:"meetings"`
}

// Site is one site of the tree (PUT /sites takes a list of them).
type Site struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Level  string `json:"level"`
	Parent string `json:"parent,omitempty"`
}

// SiteView is a site with its depth (edges from the root).
type SiteView struct {
	Site
	Depth int `json:"depth"`
}

// SiteSummary describes a whole tree: PUT /sites answers it.
type SiteSummary struct {
	Count  int            `json:"count"`
	Root   string         `json:"root,omitempty"`
	Levels map[string]int `json:"levels"`
}

// SiteList is GET /sites: every site in preorder (parents first).
type SiteList struct {
	SiteSummary
	Sites []SiteView `json:"sites"`
}

// RollCallRecord is one site's line of a roll call.
type RollCallRecord struct {
	Site             string     `json:"site"`
	Name             string     `json:"name,omitempty"`
	Level            string     `json:"level,omitempty"`
	Attended         bool       `json:"attended"`
	FirstJoined      *time.Time `json:"first_joined,omitempty"`
	LastLeft         *time.Time `json:"last_left,omitempty"`
	ConnectedSeconds int64      `json:"connected_seconds"`
	Drops            int        `json:"drops"`
	WorstGrade       string     `json:"worst_grade,omitempty"`
	LastGrade        string     `json:"last_grade,omitempty"`
	Online           bool       `json:"online"`
	Endpoints        int        `json:"endpoints"`
}

// RollCallSummary counts a roll call's sites.
type RollCallSummary struct {
	Sites    int `json:"sites"`
	Attended int `json:"attended"`
	Online   int `json:"online"`
}

// RollCall is GET /meetings/{id}/rollcall: as of now, or of the meeting's end once over.
type RollCall struct {
	Meeting Meeting          `json:"meeting"`
	AsOf    time.Time        `json:"as_of"`
	Summary RollCallSummary  `json:"summary"`
	Records []RollCallRecord `json:"records"`
}

// JoinTokenRequest is what POST /meetings/{id}/join-token takes: whom the token names.
type JoinTokenRequest struct {
	Site string `json:"site"`
	Name string `json:"name,omitempty"`
	// Role is chair, participant (the default) or room.
	Role string `json:"role,omitempty"`
}

// JoinToken is a short-lived signaling token for one meeting, with the join page's path.
type JoinToken struct {
	Token     string    `json:"token"`
	Meeting   string    `json:"meeting"`
	Site      string    `json:"site"`
	Endpoint  string    `json:"endpoint,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
	JoinPath  string    `json:"join_path"`
}

// RecordingStatus says whether a meeting is being recorded (GET, and the answer of
// POST /meetings/{id}/recording/start and /stop).
type RecordingStatus struct {
	Active bool `json:"active"`
	// ID is the recording in progress, or (after stop) the one just finished.
	ID    string    `json:"id,omitempty"`
	Since time.Time `json:"since,omitzero"`
	By    string    `json:"by,omitempty"`
}

// Recording is one recording of a meeting (GET /meetings/{id}/recordings): its state
// (recording, stopped), its files, and the composite's rendering progress.
type Recording struct {
	ID      string          `json:"id"`
	State   string          `json:"state"`
	Started time.Time       `json:"started"`
	Stopped time.Time       `json:"stopped,omitzero"`
	Files   []RecordingFile `json:"files"`
	// Compose is the composite's rendering: "" (not asked), running, done or failed.
	Compose string `json:"compose,omitempty"`
	// ComposeProgress is the share rendered (0..1) while running.
	ComposeProgress float64 `json:"compose_progress,omitempty"`
	ComposeError    string  `json:"compose_error,omitempty"`
}

// RecordingFile is one file of a recording, downloaded from
// /meetings/{id}/recordings/{rec}/files/{name}.
type RecordingFile struct {
	Name string `json:"name"`
	// Kind: media (one source's audio and video), manifest, timeline, rollcall, composite.
	Kind  string `json:"kind"`
	Bytes int64  `json:"bytes"`
	// For media files: the source and its site, where the file starts in the recording,
	// how long it is, and whether it was finished cleanly.
	Source     string `json:"source,omitempty"`
	Site       string `json:"site,omitempty"`
	OffsetMs   int64  `json:"offset_ms,omitempty"`
	DurationMs int64  `json:"duration_ms,omitempty"`
	Complete   bool   `json:"complete,omitempty"`
}

// RecordingList is GET /meetings/{id}/recordings, oldest first.
type RecordingList struct {
	Recordings []Recording `json:"recordings"`
}
