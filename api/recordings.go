package api

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/httpapi"
	"github.com/cau-project/cau/rooms"
)

// Recordings is what the recording routes drive (the server's recording service, with
// its bridge and signaling). Errors meant for the caller are *httpapi.Error.
type Recordings interface {
	// StartRecording records the live meeting at this server's bridge.
	StartRecording(ctx context.Context, meetingID string, by rooms.Actor) (httpapi.RecordingStatus, error)
	// StopRecording finishes it: files, timeline, roll call.
	StopRecording(ctx context.Context, meetingID string, by rooms.Actor) (httpapi.RecordingStatus, error)
	// RecordingStatus says whether the meeting is being recorded.
	RecordingStatus(meetingID string) httpapi.RecordingStatus
	// Recordings lists the meeting's recordings, oldest first.
	Recordings(meetingID string) ([]httpapi.Recording, error)
	// RecordingFile returns the path of a file of a recording; audit writes the download
	// to the audit log (once per download, not for every range a player asks for).
	RecordingFile(ctx context.Context, meetingID, id, name string, by rooms.Actor, audit bool) (string, error)
	// Compose starts rendering the recording's composite in the background.
	Compose(meetingID, id string, by rooms.Actor) error
	// DeleteRecording removes a finished recording.
	DeleteRecording(ctx context.Context, meetingID, id string, by rooms.Actor) error
}

// recordingControl: an admin, or the chair of that very meeting, starts and stops its
// recording and asks for its composite. Technicians watch links; they do not record.
var recordingControl = adminOrChair("control the recording of a meeting other than its own")

// recordingReader: an admin, or the chair of that meeting, lists and downloads its
// recordings (the archive's content, more than the roll call).
var recordingReader = adminOrChair("read the recordings of a meeting other than its own")

// adminOrChair lets admins in, and the chair for the meeting its token names ({id}).
func adminOrChair(other string) policy {
	return func(p *principal, r *http.Request) error {
		switch {
		case p.claims.Role == auth.RoleAdmin:
			return nil
		case p.claims.Role != auth.RoleChair:
			return forbidden(p, describe(r))
		case p.claims.Meeting != "" && p.claims.Meeting == r.PathValue("id"):
			return nil
		}
		return forbidden(p, other)
	}
}

// registerRecordings adds the recording routes (called by register).
func (a *API) registerRecordings(v string) {
	a.handle(v+"/meetings/{id}/recording",
		route{method: "GET", allow: meetingReader, handle: a.getRecordingStatus})
	a.handle(v+"/meetings/{id}/recording/start",
		route{method: "POST", allow: recordingControl, action: "record_start", handle: a.startRecording})
	a.handle(v+"/meetings/{id}/recording/stop",
		route{method: "POST", allow: recordingControl, action: "record_stop", handle: a.stopRecording})
	a.handle(v+"/meetings/{id}/recordings",
		route{method: "GET", allow: recordingReader, handle: a.listRecordings})
	a.handle(v+"/meetings/{id}/recordings/{rec}",
		route{method: "DELETE", allow: adminOnly, action: "record_delete", handle: a.deleteRecording})
	a.handle(v+"/meetings/{id}/recordings/{rec}/compose",
		route{method: "POST", allow: recordingControl, action: "record_compose", handle: a.composeRecording})
	a.handle(v+"/meetings/{id}/recordings/{rec}/files/{name}",
		route{method: "GET", allow: recordingReader, handle: a.downloadRecordingFile})
}

// recordings returns the recording service, or answers 503 without one.
func (a *API) recordings(w http.ResponseWriter) Recordings {
	if a.cfg.Recordings == nil {
		writeError(w, http.StatusServiceUnavailable, httpapi.CodeUnavailable, "this server does not record (no local bridge)")
	}
	return a.cfg.Recordings
}

// getRecordingStatus: GET /api/v1/meetings/{id}/recording.
func (a *API) getRecordingStatus(w http.ResponseWriter, r *http.Request, _ *principal) {
	if rs := a.recordings(w); rs != nil {
		writeJSON(w, http.StatusOK, rs.RecordingStatus(r.PathValue("id")))
	}
}

// startRecording: POST /api/v1/meetings/{id}/recording/start.
func (a *API) startRecording(w http.ResponseWriter, r *http.Request, p *principal) {
	rs := a.recordings(w)
	if rs == nil {
		return
	}
	st, err := rs.StartRecording(r.Context(), r.PathValue("id"), p.actor)
	a.reply(w, r, err, http.StatusOK, st)
}

// stopRecording: POST /api/v1/meetings/{id}/recording/stop.
func (a *API) stopRecording(w http.ResponseWriter, r *http.Request, p *principal) {
	rs := a.recordings(w)
	if rs == nil {
		return
	}
	st, err := rs.StopRecording(context.WithoutCancel(r.Context()), r.PathValue("id"), p.actor)
	a.reply(w, r, err, http.StatusOK, st)
}

// listRecordings: GET /api/v1/meetings/{id}/recordings.
func (a *API) listRecordings(w http.ResponseWriter, r *http.Request, _ *principal) {
	rs := a.recordings(w)
	if rs == nil {
		return
	}
	list, err := rs.Recordings(r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if list == nil {
		list = []httpapi.Recording{}
	}
	writeJSON(w, http.StatusOK, httpapi.RecordingList{Recordings: list})
}

// deleteRecording: DELETE /api/v1/meetings/{id}/recordings/{rec}.
func (a *API) deleteRecording(w http.ResponseWriter, r *http.Request, p *principal) {
	rs := a.recordings(w)
	if rs == nil {
		return
	}
	if err := rs.DeleteRecording(r.Context(), r.PathValue("id"), r.PathValue("rec"), p.actor); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// composeRecording: POST /api/v1/meetings/{id}/recordings/{rec}/compose. 202: the
// composite renders in the background; the list shows its progress.
func (a *API) composeRecording(w http.ResponseWriter, r *http.Request, p *principal) {
	rs := a.recordings(w)
	if rs == nil {
		return
	}
	if err := rs.Compose(r.PathValue("id"), r.PathValue("rec"), p.actor); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, struct {
		Compose string `json:"compose"`
	}{"running"})
}

// downloadRecordingFile: GET /api/v1/meetings/{id}/recordings/{rec}/files/{name}, with
// ranges (players seek). ?inline=1 asks for inline display instead of a download.
func (a *API) downloadRecordingFile(w http.ResponseWriter, r *http.Request, p *principal) {
	rs := a.recordings(w)
	if rs == nil {
		return
	}
	// One audit entry per download: a player's later ranges are the same download.
	rng := r.Header.Get("Range")
	first := rng == "" || strings.HasPrefix(rng, "bytes=0-")
	path, err := rs.RecordingFile(r.Context(), r.PathValue("id"), r.PathValue("rec"), r.PathValue("name"), p.actor, first)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	f, err := os.Open(path) //nolint:gosec // the path comes from the library, which checked the names
	if err != nil {
		a.fail(w, r, err)
		return
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	name := filepath.Base(path)
	disp := "attachment"
	if r.URL.Query().Get("inline") != "" {
		disp = "inline"
	}
	w.Header().Set("Content-Disposition", disp+`; filename="`+name+`"`)
	w.Header().Set("Content-Type", contentTypeOf(name))
	http.ServeContent(w, r, name, fi.ModTime(), f)
}

// contentTypeOf names the media types of a recording's files.
func contentTypeOf(name string) string {
	switch filepath.Ext(name) {
	case ".webm":
		return "video/webm"
	case ".mkv":
		return "video/x-matroska"
	case ".mp4":
		return "video/mp4"
	case ".json":
		return "application/json"
	}
	return "application/octet-stream"
}
