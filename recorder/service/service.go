// Package service runs the recordings of meetings at a node: it starts and stops them at
// the bridge that holds the meeting's streams, keeps each one's timeline (following the
// store) and roll call beside the files, writes the audit entries (start, stop, download,
// delete), renders the composite and deletes recordings past the retention age. Signaling
// and the REST API call it; it knows the domain (rooms) and the recorder, not HTTP or the
// signaling protocol.
package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/recorder"
	"github.com/cau-project/cau/recorder/compose"
	"github.com/cau-project/cau/recorder/timeline"
	"github.com/cau-project/cau/rooms"
)

// Audit actions written by the service.
const (
	ActionStart    = "record_start"
	ActionStop     = "record_stop"
	ActionDownload = "record_download"
	ActionDelete   = "record_delete"
)

// RollCallName is the roll call's file name in a recording directory.
const RollCallName = "rollcall.json"

// Streams is the bridge side: it hands the streams that pick names to a recording until
// stop is called (bridge.Agent implements it).
type Streams interface {
	RecordStreams(pick func(key ids.StreamKey) (recorder.Source, bool), sink recorder.TrackSink) (stop func())
}

// Config configures a Service.
type Config struct {
	// Library is where recordings go.
	Library recorder.Library
	// Store gives attendance, floor and the watch for the timeline, and takes the audit.
	Store rooms.Store
	// MaxAge is the retention: recordings that ended longer ago are deleted by Expire.
	// Zero keeps them.
	MaxAge time.Duration
	// FFmpeg is the ffmpeg binary for the composite; default from PATH.
	FFmpeg string
	Logger *slog.Logger
}

// ErrActive is returned when starting a meeting's recording twice.
var ErrActive = errors.New("recording: already recording this meeting")

// ErrNotActive is returned when stopping a meeting that is not being recorded.
var ErrNotActive = errors.New("recording: not recording this meeting")

// Status says whether a meeting is being recorded: what every participant's indicator
// shows.
type Status struct {
	Active bool      `json:"active"`
	ID     string    `json:"id,omitempty"` // the recording's id in the library
	Since  time.Time `json:"since,omitzero"`
	By     string    `json:"by,omitempty"`
}

// Service runs recordings. Safe for concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex // guards active
	active map[string]*session
}

// session is one meeting's recording in progress.
type session struct {
	meeting rooms.Meeting
	status  Status
	rec     *recorder.Recording
	tl      *timeline.Writer
	stop    func()             // stops handing streams to rec
	cancel  context.CancelFunc // ends the timeline's watch
}

// New returns a service.
func New(cfg Config) *Service {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Service{cfg: cfg, log: log.With("component", "recording"), active: map[string]*session{}}
}

// Start records meeting m at the bridge streams, which names the meeting's stream keys
// through pick. by is who asked (audited).
func (s *Service) Start(ctx context.Context, m rooms.Meeting, by rooms.Actor, streams Streams,
	pick func(key ids.StreamKey) (recorder.Source, bool)) (Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.active[m.ID]; ok {
		return Status{}, ErrActive
	}
	now := time.Now()
	dir, id, err := s.cfg.Library.NewDir(m.ID, now)
	if err != nil {
		return Status{}, err
	}
	attendance, err := s.cfg.Store.Attendance(ctx, m.ID)
	if err != nil {
		return Status{}, fmt.Errorf("recording %s: %w", m.ID, err)
	}
	floor, err := s.cfg.Store.Floor(ctx, m.ID)
	if err != nil {
		return Status{}, fmt.Errorf("recording %s: %w", m.ID, err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return Status{}, fmt.Errorf("recording %s: %w", m.ID, err)
	}
	tl, err := timeline.NewWriter(dir, m.ID, m.ChairSite, now, floor, attendance)
	if err != nil {
		return Status{}, err
	}
	rec, err := recorder.Start(recorder.Config{Dir: dir, Meeting: m.ID, Logger: s.log,
		OnSpeech: func(src recorder.Source, talking bool, at time.Time) { tl.Speech(src.Site, talking, at) }})
	if err != nil {
		return Status{}, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	if err := tl.Follow(wctx, s.cfg.Store); err != nil {
		s.log.Warn("recording: the timeline will miss changes", "meeting", m.ID, "err", err)
	}
	tl.Note(timeline.RecordingStarted, by.Name, now)
	sess := &session{meeting: m, rec: rec, tl: tl, cancel: cancel,
		status: Status{Active: true, ID: id, Since: now.UTC(), By: by.Name}}
	sess.stop = streams.RecordStreams(pick, rec)
	s.active[m.ID] = sess
	s.audit(ctx, by, ActionStart, m.ID, id)
	s.log.Info("recording started", "meeting", m.ID, "id", id, "by", by.Name)
	return sess.status, nil
}

// Stop ends a meeting's recording: files finished, timeline closed, roll call written.
func (s *Service) Stop(ctx context.Context, meetingID string, by rooms.Actor) (recorder.Manifest, error) {
	s.mu.Lock()
	sess, ok := s.active[meetingID]
	delete(s.active, meetingID)
	s.mu.Unlock()
	if !ok {
		return recorder.Manifest{}, ErrNotActive
	}
	sess.stop()
	man, err := sess.rec.Stop()
	sess.cancel()
	sess.tl.Note(timeline.RecordingStopped, by.Name, man.Stopped)
	errs := []error{err, sess.tl.Close(man.Stopped), s.writeRollCall(ctx, sess, man.Stopped)}
	s.audit(ctx, by, ActionStop, meetingID, sess.status.ID)
	s.log.Info("recording stopped", "meeting", meetingID, "id", sess.status.ID, "by", by.Name, "files", len(man.Files))
	return man, errors.Join(errs...)
}

// writeRollCall keeps the meeting's roll call (as of the stop) beside the files.
func (s *Service) writeRollCall(ctx context.Context, sess *session, asOf time.Time) error {
	events, err := s.cfg.Store.Attendance(ctx, sess.meeting.ID)
	if err != nil {
		return fmt.Errorf("roll call: %w", err)
	}
	records, err := rooms.BuildRollCall(sess.meeting, events, asOf)
	if err != nil {
		return fmt.Errorf("roll call: %w", err)
	}
	b, err := json.MarshalIndent(struct {
		Meeting string             `json:"meeting"`
		AsOf    time.Time          `json:"as_of"`
		Sites   []rooms.SiteRecord `json:"sites"`
	}{sess.meeting.ID, asOf.UTC(), records}, "", "  ")
	if err != nil {
		return fmt.Errorf("roll call: %w", err)
	}
	dir, err := s.cfg.Library.Dir(sess.meeting.ID, sess.status.ID)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, RollCallName), append(b, '\n'), 0o640); err != nil {
		return fmt.Errorf("roll call: %w", err)
	}
	return nil
}

// Status returns the recording state of a meeting.
func (s *Service) Status(meetingID string) Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess, ok := s.active[meetingID]; ok {
		return sess.status
	}
	return Status{}
}

// StopAll stops every recording (the server is shutting down).
func (s *Service) StopAll(ctx context.Context) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.active))
	for id := range s.active {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		if _, err := s.Stop(ctx, id, rooms.Actor{Name: "server shutdown", Role: rooms.RoleAdmin}); err != nil {
			s.log.Error("recording: stop at shutdown", "meeting", id, "err", err)
		}
	}
}

// Open returns the path of a file of a recording for download and audits it. The caller
// has checked that by may read the meeting's recordings.
func (s *Service) Open(ctx context.Context, meetingID, id, name string, by rooms.Actor) (string, error) {
	p, err := s.cfg.Library.File(meetingID, id, name)
	if err != nil {
		return "", err
	}
	s.audit(ctx, by, ActionDownload, meetingID, id+"/"+name)
	return p, nil
}

// Delete removes a recording (not one in progress) and audits it.
func (s *Service) Delete(ctx context.Context, meetingID, id string, by rooms.Actor) error {
	if s.Status(meetingID).ID == id {
		return ErrActive
	}
	if err := s.cfg.Library.Delete(meetingID, id); err != nil {
		return err
	}
	s.audit(ctx, by, ActionDelete, meetingID, id)
	return nil
}

// Compose renders a recording's composite (speaker view) after the meeting.
func (s *Service) Compose(ctx context.Context, meetingID, id string, progress func(done, total time.Duration)) error {
	if s.Status(meetingID).ID == id {
		return ErrActive
	}
	dir, err := s.cfg.Library.Dir(meetingID, id)
	if err != nil {
		return err
	}
	return compose.Compose(ctx, compose.Options{Dir: dir, FFmpeg: s.cfg.FFmpeg, Progress: progress})
}

// retentionActor is who deletes expired recordings in the audit log.
var retentionActor = rooms.Actor{Name: "retention", Role: rooms.RoleAdmin}

// Expire deletes the recordings past the retention age and audits each deletion.
func (s *Service) Expire(ctx context.Context, now time.Time) ([]recorder.Entry, error) {
	gone, err := s.cfg.Library.Expire(now, s.cfg.MaxAge, func(meeting, id string) bool { return s.Status(meeting).ID == id })
	for _, e := range gone {
		s.audit(ctx, retentionActor, ActionDelete, e.Meeting, e.ID+" (older than "+s.cfg.MaxAge.String()+")")
	}
	return gone, err
}

// RunRetention calls Expire every interval until ctx ends.
func (s *Service) RunRetention(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if gone, err := s.Expire(ctx, time.Now()); err != nil || len(gone) > 0 {
			s.log.Info("recording retention", "deleted", len(gone), "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Service) audit(ctx context.Context, by rooms.Actor, action, meetingID, detail string) {
	e := rooms.NewAuditEntry(time.Now(), by, action, meetingID, detail)
	if err := s.cfg.Store.AppendAudit(ctx, e); err != nil {
		s.log.Error("recording: audit entry lost", "action", action, "meeting", meetingID, "err", err)
	}
}
