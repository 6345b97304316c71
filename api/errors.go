package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"

	"github.com/cau-project/cau/internal/httpapi"
	"github.com/cau-project/cau/rooms"
)

// writeError and writeJSON answer the one way the REST surface does (package httpapi).
func writeError(w http.ResponseWriter, status int, code, message string) {
	httpapi.WriteError(w, status, code, message)
}

func writeJSON(w http.ResponseWriter, status int, v any) { httpapi.WriteJSON(w, status, v) }

// reply answers v with status, or err's answer when the handler failed.
func (a *API) reply(w http.ResponseWriter, r *http.Request, err error, status int, v any) {
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, status, v)
}

// newError makes an error with its HTTP status and code, for the client's mistakes.
func newError(status int, code, format string, args ...any) *httpapi.Error {
	return httpapi.Errorf(status, code, format, args...)
}

// badRequest and invalid are the two common client mistakes.
func badRequest(format string, args ...any) *httpapi.Error {
	return newError(http.StatusBadRequest, httpapi.CodeBadRequest, format, args...)
}

func invalid(format string, args ...any) *httpapi.Error {
	return newError(http.StatusUnprocessableEntity, httpapi.CodeInvalid, format, args...)
}

// fail answers with err: an *httpapi.Error as it is, a rooms error by its sentinel, anything
// else as a logged 500 whose details stay in the log.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *httpapi.Error
	var mbe *http.MaxBytesError
	var ce *rooms.ConflictError
	status, code, msg := http.StatusInternalServerError, httpapi.CodeInternal, err.Error()
	switch {
	case errors.As(err, &ae):
		status, code, msg = ae.Status, ae.Code, ae.Message
	case errors.As(err, &mbe):
		status, code, msg = http.StatusRequestEntityTooLarge, httpapi.CodeTooLarge,
			fmt.Sprintf("request body larger than %d bytes", mbe.Limit)
	case errors.As(err, &ce), errors.Is(err, rooms.ErrConflict):
		status, code = http.StatusConflict, httpapi.CodeConflict
		if ce != nil && !isJoined(err) {
			msg = ce.Error()
		}
	case errors.Is(err, rooms.ErrExists):
		status, code = http.StatusConflict, httpapi.CodeExists
	case errors.Is(err, rooms.ErrMeetingOver):
		status, code = http.StatusConflict, httpapi.CodeMeetingOver
	case errors.Is(err, rooms.ErrNotFound):
		status, code = http.StatusNotFound, httpapi.CodeNotFound
	case errors.Is(err, rooms.ErrInvalidMeeting), errors.Is(err, rooms.ErrInvalidEndpoint),
		errors.Is(err, rooms.ErrUnknownSite), errors.Is(err, rooms.ErrEmptyID),
		errors.Is(err, rooms.ErrDuplicateSite), errors.Is(err, rooms.ErrUnknownParent),
		errors.Is(err, rooms.ErrCycle), errors.Is(err, rooms.ErrNoRoot),
		errors.Is(err, rooms.ErrMultipleRoots), errors.Is(err, rooms.ErrUnknownLevel),
		errors.Is(err, rooms.ErrLevelOrder), errors.Is(err, rooms.ErrSyntax):
		status, code = http.StatusUnprocessableEntity, httpapi.CodeInvalid
	case errors.Is(err, rooms.ErrBusy), errors.Is(err, rooms.ErrClosed):
		status, code = http.StatusServiceUnavailable, httpapi.CodeUnavailable
	}
	level := slog.LevelDebug
	if status >= 500 {
		level = slog.LevelError
		if code == httpapi.CodeInternal {
			msg = "internal error (see the server log)"
		}
	}
	a.log.Log(r.Context(), level, "request failed", "method", r.Method, "path", r.URL.Path,
		"status", status, "err", err)
	writeError(w, status, code, msg)
}

// isJoined reports whether err holds several errors (errors.Join), so its full text,
// not only the first conflict, must be shown.
func isJoined(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if _, ok := e.(interface{ Unwrap() []error }); ok {
			return true
		}
	}
	return false
}

// decodeUpdate decodes the body of a PUT or PATCH on a record's path (…/{id}) into v,
// whose id field is *bodyID: a body may leave it out, but not name another record (ids
// cannot change). On success *bodyID is the path's id, which is returned.
func decodeUpdate(w http.ResponseWriter, r *http.Request, what string, v any, bodyID *string) (string, error) {
	id := r.PathValue("id")
	if err := decodeJSON(w, r, MaxBodyBytes, v); err != nil {
		return id, err
	}
	if *bodyID != "" && *bodyID != id {
		return id, invalid("%s id %q in the body differs from %q in the path: ids cannot change", what, *bodyID, id)
	}
	*bodyID = id
	return id, nil
}

// decodeJSON reads a JSON body of at most limit bytes into v: unknown fields, trailing
// data and a non-JSON content type are errors.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "text/json") {
			return newError(http.StatusUnsupportedMediaType, httpapi.CodeUnsupportedType,
				"Content-Type %q: want application/json", ct)
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			return err
		case errors.Is(err, io.EOF):
			return badRequest("empty body: want a JSON object")
		case errors.As(err, &se):
			return badRequest("malformed JSON at byte %d: %v", se.Offset, err)
		case errors.As(err, &te):
			return badRequest("JSON field %q: want %s, got %s", te.Field, te.Type, te.Value)
		}
		return badRequest("bad JSON body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("bad JSON body: trailing data after the JSON value (send one JSON object)")
	}
	return nil
}
