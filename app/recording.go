package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/internal/httpapi"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/recorder"
	"github.com/cau-project/cau/recorder/service"
	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/signaling"
)

// recordings is the REST API's recording service (api.Recordings) in a server with a
// local bridge: it records the meeting's streams at that bridge (recorder/service),
// tells the meeting's participants through signaling, and renders composites in the
// background. Safe for concurrent use.
type recordings struct {
	svc   *service.Service
	lib   recorder.Library
	store rooms.Store
	sig   *signaling.Server
	log   *slog.Logger
	// ctx ends with the server: it cancels composites still rendering.
	ctx context.Context

	mu        sync.Mutex             // guards composing
	composing map[string]*composeJob // by meeting/recording id
}

// composeJob is a composite's rendering, as the list shows it.
type composeJob struct {
	state    string // running, done, failed
	progress float64
	err      string
}

func newRecordings(ctx context.Context, dir string, maxAge time.Duration, store rooms.Store,
	sig *signaling.Server, log *slog.Logger) *recordings {
	lib := recorder.Library{Root: dir}
	return &recordings{
		svc: service.New(service.Config{Library: lib, Store: store, MaxAge: maxAge, Logger: log}),
		lib: lib, store: store, sig: sig, log: log.With("component", "recording"), ctx: ctx,
		composing: map[string]*composeJob{},
	}
}

// recErr turns the recorder's errors into the API's answers.
func recErr(err error) error {
	switch {
	case errors.Is(err, service.ErrActive):
		return httpapi.Errorf(http.StatusConflict, httpapi.CodeConflict, "%v", err)
	case errors.Is(err, service.ErrNotActive):
		return httpapi.Errorf(http.StatusConflict, httpapi.CodeConflict, "%v", err)
	case errors.Is(err, recorder.ErrNotFound), errors.Is(err, recorder.ErrBadName):
		return httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "%v", err)
	}
	return err
}

func statusView(st service.Status) httpapi.RecordingStatus {
	return httpapi.RecordingStatus{Active: st.Active, ID: st.ID, Since: st.Since, By: st.By}
}

// StartRecording implements api.Recordings: the meeting must be scheduled and have
// someone connected on this server.
func (r *recordings) StartRecording(ctx context.Context, meetingID string, by rooms.Actor) (httpapi.RecordingStatus, error) {
	m, err := r.store.Meeting(ctx, meetingID)
	if err != nil {
		return httpapi.RecordingStatus{}, fmt.Errorf("record %s: %w", meetingID, err)
	}
	local := r.sig.Local()
	if local == nil {
		return httpapi.RecordingStatus{}, httpapi.Errorf(http.StatusServiceUnavailable, httpapi.CodeUnavailable,
			"this server has no bridge to record at")
	}
	if len(r.sig.Participants(meetingID)) == 0 {
		return httpapi.RecordingStatus{}, httpapi.Errorf(http.StatusConflict, httpapi.CodeNotConnectable,
			"meeting %s is not live on this server: nobody is connected", meetingID)
	}
	// A participant's camera and microphone make one source (one file), its screen
	// another; the site names the source in the timeline and the composite.
	pick := func(key ids.StreamKey) (recorder.Source, bool) {
		site, ok := r.sig.ParticipantSite(meetingID, string(key.Participant))
		if !ok {
			return recorder.Source{}, false
		}
		group := "camera"
		if key.Source == ids.SourceScreen {
			group = "screen"
		}
		return recorder.Source{Name: site + "-" + string(key.Participant) + "-" + group, Site: site}, true
	}
	st, err := r.svc.Start(ctx, m, by, local.Agent(), pick)
	if err != nil {
		return httpapi.RecordingStatus{}, recErr(err)
	}
	r.sig.SetRecording(meetingID, protocol.Recording{Active: true, Since: st.Since, By: st.By})
	return statusView(st), nil
}

// StopRecording implements api.Recordings.
func (r *recordings) StopRecording(ctx context.Context, meetingID string, by rooms.Actor) (httpapi.RecordingStatus, error) {
	id := r.svc.Status(meetingID).ID
	_, err := r.svc.Stop(ctx, meetingID, by)
	if errors.Is(err, service.ErrNotActive) {
		return httpapi.RecordingStatus{}, recErr(err)
	}
	// Stopped, even if a file or the roll call failed: the pages must say so.
	r.sig.SetRecording(meetingID, protocol.Recording{Active: false, By: by.Name})
	if err != nil {
		return httpapi.RecordingStatus{}, fmt.Errorf("stop recording %s: %w", meetingID, err)
	}
	return httpapi.RecordingStatus{ID: id, By: by.Name}, nil
}

// RecordingStatus implements api.Recordings.
func (r *recordings) RecordingStatus(meetingID string) httpapi.RecordingStatus {
	return statusView(r.svc.Status(meetingID))
}

// Recordings implements api.Recordings: each recording's media files from its manifest,
// then the other files of its directory (manifest, timeline, roll call, composite).
func (r *recordings) Recordings(meetingID string) ([]httpapi.Recording, error) {
	entries, err := r.lib.List(meetingID)
	if err != nil {
		return nil, recErr(err)
	}
	out := make([]httpapi.Recording, 0, len(entries))
	for _, e := range entries {
		dir, err := r.lib.Dir(meetingID, e.ID)
		if err != nil {
			continue // deleted meanwhile
		}
		v := httpapi.Recording{ID: e.ID, State: e.Manifest.State, Started: e.Manifest.Started,
			Stopped: e.Manifest.Stopped, Files: []httpapi.RecordingFile{}}
		media := map[string]bool{}
		for _, f := range e.Manifest.Files {
			media[f.Name] = true
			v.Files = append(v.Files, httpapi.RecordingFile{Name: f.Name, Kind: "media", Bytes: fileSize(dir, f.Name),
				Source: f.Source, Site: f.Site, OffsetMs: f.OffsetMs, DurationMs: f.DurationMs, Complete: f.Complete})
		}
		for name, kind := range map[string]string{recorder.ManifestName: "manifest", "timeline.json": "timeline",
			service.RollCallName: "rollcall", "composite.mp4": "composite"} {
			if n := fileSize(dir, name); n >= 0 && !media[name] {
				v.Files = append(v.Files, httpapi.RecordingFile{Name: name, Kind: kind, Bytes: n})
			}
		}
		slices.SortStableFunc(v.Files, func(a, b httpapi.RecordingFile) int { return fileOrder(a) - fileOrder(b) })
		r.mu.Lock()
		if j := r.composing[meetingID+"/"+e.ID]; j != nil {
			v.Compose, v.ComposeProgress, v.ComposeError = j.state, j.progress, j.err
		}
		r.mu.Unlock()
		out = append(out, v)
	}
	return out, nil
}

// fileOrder lists the composite first, then media, then the documents.
func fileOrder(f httpapi.RecordingFile) int {
	return slices.Index([]string{"composite", "media", "rollcall", "timeline", "manifest"}, f.Kind)
}

// fileSize is the size of dir/name, −1 if it is not a regular file.
func fileSize(dir, name string) int64 {
	fi, err := os.Stat(filepath.Join(dir, name))
	if err != nil || !fi.Mode().IsRegular() {
		return -1
	}
	return fi.Size()
}

// RecordingFile implements api.Recordings.
func (r *recordings) RecordingFile(ctx context.Context, meetingID, id, name string, by rooms.Actor, audit bool) (string, error) {
	var p string
	var err error
	if audit {
		p, err = r.svc.Open(ctx, meetingID, id, name, by)
	} else {
		p, err = r.lib.File(meetingID, id, name)
	}
	return p, recErr(err)
}

// Compose implements api.Recordings: the composite renders on its own goroutine, one
// at a time per recording.
func (r *recordings) Compose(meetingID, id string, by rooms.Actor) error {
	if _, err := r.lib.Dir(meetingID, id); err != nil {
		return recErr(err)
	}
	if r.svc.Status(meetingID).ID == id {
		return recErr(service.ErrActive)
	}
	key := meetingID + "/" + id
	r.mu.Lock()
	if j := r.composing[key]; j != nil && j.state == "running" {
		r.mu.Unlock()
		return httpapi.Errorf(http.StatusConflict, httpapi.CodeConflict, "the composite of %s is already rendering", key)
	}
	job := &composeJob{state: "running"}
	r.composing[key] = job
	r.mu.Unlock()
	r.log.Info("composite requested", "meeting", meetingID, "id", id, "by", by.Name)
	go func() {
		err := r.svc.Compose(r.ctx, meetingID, id, func(done, total time.Duration) {
			if total > 0 {
				r.mu.Lock()
				job.progress = min(1, float64(done)/float64(total))
				r.mu.Unlock()
			}
		})
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			job.state, job.err = "failed", err.Error()
			r.log.Error("composite failed", "meeting", meetingID, "id", id, "err", err)
			return
		}
		job.state, job.progress = "done", 1
	}()
	return nil
}

// DeleteRecording implements api.Recordings.
func (r *recordings) DeleteRecording(ctx context.Context, meetingID, id string, by rooms.Actor) error {
	if err := r.svc.Delete(ctx, meetingID, id, by); err != nil {
		return recErr(err)
	}
	r.mu.Lock()
	delete(r.composing, meetingID+"/"+id)
	r.mu.Unlock()
	return nil
}
