// Package httpapi holds the conventions of Cầu's one REST surface (/api/v1/), shared by
// its servers (package api, and monitor's console feed) and its client (package
// apiclient): how a caller's token is read, the one error shape
// {"error":{"code":…,"message":…}} with its codes, how answers are written, and the JSON
// views more than one of them reads or writes (views.go).
//
// It depends on the standard library only, so a client of the API (the load tester)
// pulls in nothing of the server.
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Error codes, the "code" of an error body. Clients branch on these, not on messages.
const (
	CodeBadRequest           = "bad_request"            // 400: malformed JSON or query
	CodeUnauthorized         = "unauthorized"           // 401: no token, or an invalid or expired one
	CodeForbidden            = "forbidden"              // 403: the role may not do this
	CodeNotFound             = "not_found"              // 404
	CodeMethodNotAllowed     = "method_not_allowed"     // 405
	CodeConflict             = "conflict"               // 409: a schedule conflict
	CodeExists               = "exists"                 // 409: the id is taken
	CodeInUse                = "in_use"                 // 409: still referenced (site with endpoints…)
	CodeMeetingOver          = "meeting_over"           // 409: ended or cancelled meetings do not change
	CodeNotConnectable       = "not_connectable"        // 409: no meeting to join now
	CodePreconditionFailed   = "precondition_failed"    // 412: If-Match names another version
	CodeTooLarge             = "too_large"              // 413
	CodeUnsupportedType      = "unsupported_media_type" // 415
	CodeInvalid              = "invalid"                // 422: well-formed but fails validation
	CodePreconditionRequired = "precondition_required"  // 428: a change without If-Match
	CodeInternal             = "internal"               // 500
	CodeUnavailable          = "unavailable"            // 503
)

// Error is an error answer: its HTTP status and the body's code and message. Servers
// make one for the client's mistakes; the client returns one for every error answer.
type Error struct {
	Status  int
	Code    string
	Message string
}

// Errorf makes an *Error with a formatted message.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s (HTTP %d)", e.Code, e.Message, e.Status)
}

// ErrorBody is the JSON of every error answer.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// ParseError reads an error answer with its status; a body that is not an ErrorBody
// (a proxy's page) becomes code "http" with the body as the message.
func ParseError(status int, body []byte) *Error {
	var b ErrorBody
	if json.Unmarshal(body, &b) != nil || b.Error.Code == "" {
		return &Error{Status: status, Code: "http", Message: strings.TrimSpace(string(body))}
	}
	return &Error{Status: status, Code: b.Error.Code, Message: b.Error.Message}
}

// SetHeaders sets the headers every API answer carries: nothing is cached (answers
// hold tokens and live state) and the content type is taken as declared.
func SetHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
}

// WriteError answers with an error body. A 401 also says, in WWW-Authenticate, that a
// Bearer token is wanted.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cau"`)
	}
	var b ErrorBody
	b.Error.Code, b.Error.Message = code, message
	WriteJSON(w, status, b)
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client may be gone; nothing to do about it
}

// Bearer token errors.
var (
	// ErrNoToken means the request has no Authorization header.
	ErrNoToken = errors.New("missing Authorization: Bearer <token>")
	// ErrBadAuthorization means the header is there but is not "Bearer <token>".
	ErrBadAuthorization = errors.New(`the Authorization header must be "Bearer <token>"`)
)

// BearerToken returns the token of the request's "Authorization: Bearer <token>" header
// (the scheme in any case). Tokens travel only there, never in the URL, so they stay out
// of access logs. The caller verifies the token with its keys.
func BearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", ErrNoToken
	}
	scheme, tok, ok := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", ErrBadAuthorization
	}
	return tok, nil
}

// Route is one method on one path pattern ("/api/v1/meetings/{id}"), as a server
// registers it; the OpenAPI test checks each against docs/openapi.yaml.
type Route struct {
	Method, Path string
}
