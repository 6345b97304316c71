package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"

	"github.com/cau-project/cau/rooms"
)

// Error codes, the "code" of an error body. Clients branch on these, not on messages.
const (
	codeBadRequest       = "bad_request"            // 400: malformed JSON or query
	codeUnauthorized     = "unauthorized"           // 401: no token, or an invalid or expired one
	codeForbidden        = "forbidden"              // 403: the role may not do this
	codeNotFound         = "not_found"              // 404
	codeMethodNotAllowed = "method_not_allowed"     // 405
	codeConflict         = "conflict"               // 409: a schedule conflict
	codeExists           = "exists"                 // 409: the id is taken
	codeInUse            = "in_use"                 // 409: still referenced (site with endpoints…)
	codeMeetingOver      = "meeting_over"           // 409: ended or cancelled meetings do not change
	codeNotConnectable   = "not_connectable"        // 409: no meeting to join now
	codeTooLarge         = "too_large"              // 413
	codeUnsupportedType  = "unsupported_media_type" // 415
	codeInvalid          = "invalid"                // 422: well-formed but fails validation
	codeUnavailable      = "unavailable"            // 503
	codeInternal         = "internal"               // 500
)

// errorBody is the JSON of every error response.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeError answers with an error body.
func writeError(w http.ResponseWriter, status int, code, message string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, message
	writeJSON(w, status, b)
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client may be gone; nothing to do about it
}

// apiError is an error with its HTTP status and code, made by handlers for the
// client's mistakes.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.message }

func newError(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// badRequest and invalid are the two common client mistakes.
func badRequest(format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, codeBadRequest, format, args...)
}

func invalid(format string, args ...any) *apiError {
	return newError(http.StatusUnprocessableEntity, codeInvalid, format, args...)
}

// fail answers with err: an *apiError as it is, a rooms error by its sentinel, anything
// else as a logged 500 whose details stay in the log.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var mbe *http.MaxBytesError
	var ce *rooms.ConflictError
	status, code, msg := http.StatusInternalServerError, codeInternal, err.Error()
	switch {
	case errors.As(err, &ae):
		status, code, msg = ae.status, ae.code, ae.message
	case errors.As(err, &mbe):
		status, code, msg = http.StatusRequestEntityTooLarge, codeTooLarge,
			fmt.Sprintf("request body larger than %d bytes", mbe.Limit)
	case errors.As(err, &ce), errors.Is(err, rooms.ErrConflict):
		status, code = http.StatusConflict, codeConflict
		if ce != nil && !isJoined(err) {
			msg = ce.Error()
		}
	case errors.Is(err, rooms.ErrExists):
		status, code = http.StatusConflict, codeExists
	case errors.Is(err, rooms.ErrMeetingOver):
		status, code = http.StatusConflict, codeMeetingOver
	case errors.Is(err, rooms.ErrNotFound):
		status, code = http.StatusNotFound, codeNotFound
	case errors.Is(err, rooms.ErrInvalidMeeting), errors.Is(err, rooms.ErrInvalidEndpoint),
		errors.Is(err, rooms.ErrUnknownSite), errors.Is(err, rooms.ErrEmptyID),
		errors.Is(err, rooms.ErrDuplicateSite), errors.Is(err, rooms.ErrUnknownParent),
		errors.Is(err, rooms.ErrCycle), errors.Is(err, rooms.ErrNoRoot),
		errors.Is(err, rooms.ErrMultipleRoots), errors.Is(err, rooms.ErrUnknownLevel),
		errors.Is(err, rooms.ErrLevelOrder), errors.Is(err, rooms.ErrSyntax):
		status, code = http.StatusUnprocessableEntity, codeInvalid
	case errors.Is(err, rooms.ErrBusy), errors.Is(err, rooms.ErrClosed):
		status, code = http.StatusServiceUnavailable, codeUnavailable
	}
	level := slog.LevelDebug
	if status >= 500 {
		level = slog.LevelError
		if code == codeInternal {
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

// decodeJSON reads a JSON body of at most limit bytes into v: unknown fields, trailing
// data and a non-JSON content type are errors.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "text/json") {
			return newError(http.StatusUnsupportedMediaType, codeUnsupportedType,
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
