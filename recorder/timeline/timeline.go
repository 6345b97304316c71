// Package timeline builds a meeting's timeline for its record: who joined and left, who
// asked for and had the floor and when, who spoke, how the speaker-view layout changed,
// and when recording started and stopped. It folds the same events as the roll call and
// the floor (rooms.Change values from the store's watch, attendance events) and the
// recorder's voice activity, and keeps timeline.json next to the recording's files.
//
// The package knows rooms (domain values) and nothing of WebRTC or files other than its
// own JSON.
package timeline

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cau-project/cau/internal/jsonfile"
	"github.com/cau-project/cau/rooms"
)

// FileName is the timeline's file name in a recording directory.
const FileName = "timeline.json"

// Kind is what a timeline event reports.
type Kind string

// Event kinds.
const (
	Present          Kind = "present"           // a site was connected when recording started
	Joined           Kind = "joined"            // a site's first endpoint connected
	Left             Kind = "left"              // a site's last endpoint left or was lost
	FloorRequested   Kind = "floor_requested"   // a site raised its hand
	FloorGranted     Kind = "floor_granted"     // a site got the floor (Media says what)
	FloorReleased    Kind = "floor_released"    // a site lost the floor
	ModeChanged      Kind = "mode_changed"      // the chair switched the floor mode (Detail)
	MutedAll         Kind = "muted_all"         // the chair muted every site
	SpeechStarted    Kind = "speech_started"    // a site started talking (voice activity)
	SpeechEnded      Kind = "speech_ended"      // it stopped
	LayoutChanged    Kind = "layout_changed"    // the speaker view changed (Layout)
	MeetingEnded     Kind = "meeting_ended"     // the chair ended the meeting
	RecordingStarted Kind = "recording_started" // Detail: who started it
	RecordingStopped Kind = "recording_stopped" // Detail: who stopped it
)

// Layout is the speaker view at a moment: the site shown large (the speaker, or the chair
// when nobody else has the floor or talks) and the one in the second window (the chair
// while someone else speaks, else the previous speaker).
type Layout struct {
	Main   string `json:"main"`
	Second string `json:"second,omitempty"`
}

// Event is one entry of the timeline.
type Event struct {
	Time time.Time `json:"time"`
	// OffsetMs is Time − the timeline's Started: the position in the recording.
	OffsetMs int64  `json:"offset_ms"`
	Kind     Kind   `json:"kind"`
	Site     string `json:"site,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`
	// Mic and Camera are what a floor grant allows.
	Mic    *bool   `json:"mic,omitempty"`
	Camera *bool   `json:"camera,omitempty"`
	Layout *Layout `json:"layout,omitempty"`
	Detail string  `json:"detail,omitempty"`
}

// Timeline is the content of timeline.json.
type Timeline struct {
	Meeting   string    `json:"meeting"`
	ChairSite string    `json:"chair_site"`
	Started   time.Time `json:"started"`
	Stopped   time.Time `json:"stopped,omitzero"`
	Events    []Event   `json:"events"`
}

// LayoutAt returns the layout in force at offset ms (the chair's before any change).
func (t Timeline) LayoutAt(ms int64) Layout {
	l := Layout{Main: t.ChairSite}
	for _, e := range t.Events {
		if e.OffsetMs > ms {
			break
		}
		if e.Kind == LayoutChanged && e.Layout != nil {
			l = *e.Layout
		}
	}
	return l
}

// Read reads the timeline of the recording in dir.
func Read(dir string) (Timeline, error) { return jsonfile.Read[Timeline](dir, FileName) }

// Writer builds a timeline and rewrites timeline.json (atomically) after each change,
// so a crash keeps everything up to it. Safe for concurrent use.
type Writer struct {
	dir string

	mu       sync.Mutex // guards everything below
	tl       Timeline
	floor    rooms.FloorState
	online   map[string]map[string]bool // site → endpoints connected
	talking  map[string]bool
	lastTalk string // the latest site that started talking
	layout   Layout
	err      error // the last write error
}

// NewWriter starts the timeline of meeting (chaired by chairSite) at started, the
// recording's start, in dir. floor is the floor as it stands and attendance the meeting's
// attendance events so far: the timeline opens with the sites present and the layout.
func NewWriter(dir, meeting, chairSite string, started time.Time, floor rooms.FloorState, attendance []rooms.AttendanceEvent) (*Writer, error) {
	w := &Writer{dir: dir, online: map[string]map[string]bool{}, talking: map[string]bool{},
		tl: Timeline{Meeting: meeting, ChairSite: chairSite, Started: started.UTC(), Events: []Event{}}}
	events := slices.Clone(attendance)
	slices.SortStableFunc(events, func(a, b rooms.AttendanceEvent) int { return a.Time.Compare(b.Time) })
	for _, e := range events {
		w.attend(e)
	}
	w.floor = floor.Clone()
	sites := make([]string, 0, len(w.online))
	for s, eps := range w.online {
		if len(eps) > 0 {
			sites = append(sites, s)
		}
	}
	slices.Sort(sites)
	for _, s := range sites {
		w.add(Event{Time: started, Kind: Present, Site: s})
	}
	for _, g := range floor.Speakers {
		w.add(Event{Time: started, Kind: FloorGranted, Site: g.Site, Mic: &g.Mic, Camera: &g.Camera})
	}
	w.relayout(started)
	return w, w.save()
}

// attend updates who is online; it reports a site that came online or went offline.
func (w *Writer) attend(e rooms.AttendanceEvent) (Kind, bool) {
	eps := w.online[e.Site]
	if eps == nil {
		eps = map[string]bool{}
		w.online[e.Site] = eps
	}
	switch e.Kind {
	case rooms.EventConnected:
		was := len(eps) > 0
		eps[e.Endpoint] = true
		return Joined, !was
	case rooms.EventDisconnected:
		if !eps[e.Endpoint] {
			return "", false
		}
		delete(eps, e.Endpoint)
		return Left, len(eps) == 0
	}
	return "", false
}

// add appends an event (caller holds mu, or is the constructor).
func (w *Writer) add(e Event) {
	e.Time = e.Time.UTC()
	e.OffsetMs = e.Time.Sub(w.tl.Started).Milliseconds()
	w.tl.Events = append(w.tl.Events, e)
}

// Change applies a change of the meeting from the store's watch.
func (w *Writer) Change(c rooms.Change) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch c.Kind {
	case rooms.ChangeAttendance:
		if c.Event == nil {
			return
		}
		if k, ok := w.attend(*c.Event); ok {
			w.add(Event{Time: c.Event.Time, Kind: k, Site: c.Event.Site, Endpoint: c.Event.Endpoint})
			if k == Left && w.talking[c.Event.Site] {
				delete(w.talking, c.Event.Site)
				w.add(Event{Time: c.Event.Time, Kind: SpeechEnded, Site: c.Event.Site})
			}
			w.relayout(c.Event.Time)
		}
	case rooms.ChangeFloor:
		if c.Floor == nil || c.Floor.Version <= w.floor.Version && w.floor.Version != 0 {
			return // stale: nodes may deliver an older state after a newer one
		}
		at := c.Floor.UpdatedAt
		if at.IsZero() {
			at = time.Now()
		}
		w.floorDiff(w.floor, *c.Floor, at)
		w.floor = c.Floor.Clone()
		w.relayout(at)
	default:
		return
	}
	w.saveLocked()
}

// floorDiff records what changed between two floor states.
func (w *Writer) floorDiff(old, cur rooms.FloorState, at time.Time) {
	if old.Mode != "" && cur.Mode != old.Mode {
		w.add(Event{Time: at, Kind: ModeChanged, Detail: string(cur.Mode)})
	}
	for _, r := range cur.Requests {
		if !old.Requested(r.Site) {
			w.add(Event{Time: r.At, Kind: FloorRequested, Site: r.Site})
		}
	}
	for _, g := range old.Speakers {
		if _, still := cur.Speaking(g.Site); !still {
			w.add(Event{Time: at, Kind: FloorReleased, Site: g.Site})
		}
	}
	for _, g := range cur.Speakers {
		if o, was := old.Speaking(g.Site); !was || o.Mic != g.Mic || o.Camera != g.Camera {
			w.add(Event{Time: at, Kind: FloorGranted, Site: g.Site, Mic: &g.Mic, Camera: &g.Camera})
		}
	}
	if cur.MuteEpoch > old.MuteEpoch && old.Version != 0 {
		w.add(Event{Time: at, Kind: MutedAll})
	}
	if cur.Ended && !old.Ended {
		w.add(Event{Time: at, Kind: MeetingEnded})
	}
}

// Speech records that site started (true) or stopped talking at at, as the recorder's
// voice activity detection saw it.
func (w *Writer) Speech(site string, talking bool, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.talking[site] == talking {
		return
	}
	if talking {
		w.talking[site] = true
		w.lastTalk = site
		w.add(Event{Time: at, Kind: SpeechStarted, Site: site})
	} else {
		delete(w.talking, site)
		w.add(Event{Time: at, Kind: SpeechEnded, Site: site})
	}
	w.relayout(at)
	w.saveLocked()
}

// Note records a recording event (RecordingStarted, RecordingStopped) with a detail
// such as who acted.
func (w *Writer) Note(kind Kind, detail string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.add(Event{Time: at, Kind: kind, Detail: detail})
	w.saveLocked()
}

// relayout computes the speaker view and records it when it changed. The speaker is,
// in training and directed modes, the latest site granted the floor; in discussion mode
// the latest site that started talking and still is. The chair site is shown large when
// there is no other speaker, and in the second window when there is. Caller holds mu.
func (w *Writer) relayout(at time.Time) {
	chair := w.tl.ChairSite
	speaker := ""
	if w.floor.Mode == rooms.ModeDiscussion || w.floor.Mode == "" {
		if w.lastTalk != "" && w.talking[w.lastTalk] && w.lastTalk != chair {
			speaker = w.lastTalk
		}
	} else if n := len(w.floor.Speakers); n > 0 {
		speaker = w.floor.Speakers[n-1].Site
	}
	l := Layout{Main: chair}
	if speaker != "" && speaker != chair {
		l = Layout{Main: speaker, Second: chair}
	}
	if l == w.layout {
		return
	}
	w.layout = l
	w.add(Event{Time: at, Kind: LayoutChanged, Layout: &l})
}

// Close records the end of the recording and writes the file a last time.
func (w *Writer) Close(stopped time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tl.Stopped = stopped.UTC()
	for _, s := range slices.Sorted(maps.Keys(w.talking)) {
		w.add(Event{Time: stopped, Kind: SpeechEnded, Site: s})
	}
	clear(w.talking)
	w.saveLocked()
	return w.err
}

// Timeline returns a copy of the timeline so far.
func (w *Writer) Timeline() Timeline {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.tl
	t.Events = slices.Clone(t.Events)
	return t
}

func (w *Writer) save() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.saveLocked()
	return w.err
}

// saveLocked rewrites the file with events in time order (a floor request carries its
// own time, which may precede the change that reported it). Caller holds mu.
func (w *Writer) saveLocked() {
	slices.SortStableFunc(w.tl.Events, func(a, b Event) int { return a.Time.Compare(b.Time) })
	w.err = jsonfile.Write(w.dir, FileName, w.tl)
}

// Follow applies the meeting's changes from the store's watch (the same feed that
// updates the roll call and the floor on every node) until ctx ends.
func (w *Writer) Follow(ctx context.Context, s rooms.Watcher) error {
	ch, err := s.Watch(ctx, w.tl.Meeting)
	if err != nil {
		return fmt.Errorf("timeline: watch %s: %w", w.tl.Meeting, err)
	}
	go func() {
		for c := range ch {
			w.Change(c)
		}
	}()
	return nil
}
