// Package apiclient is the Go client of Cầu's REST API (/api/v1/): what `cau sites`,
// `cau meetings`, the load tester and the tests call the API with. It speaks only the
// public surface (package internal/httpapi's shapes), so a program using it pulls in
// nothing of the server.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cau-project/cau/internal/httpapi"
)

// The views the API answers with (see docs/openapi.yaml).
type (
	// Meeting is a meeting as the API shows it.
	Meeting = httpapi.Meeting
	// Site is one site of the tree.
	Site = httpapi.Site
	// SiteList is the whole tree, parents first.
	SiteList = httpapi.SiteList
	// SiteSummary counts a tree's sites.
	SiteSummary = httpapi.SiteSummary
	// RollCall is a meeting's roll call.
	RollCall = httpapi.RollCall
	// JoinTokenRequest names whom a meeting join token is for.
	JoinTokenRequest = httpapi.JoinTokenRequest
	// JoinToken is a signaling token for one meeting.
	JoinToken = httpapi.JoinToken
	// Error is an error answer: errors.As(err, new(*apiclient.Error)) gives its status and
	// code.
	Error = httpapi.Error
)

// MaxAnswerBytes bounds an answer read (a national tree is about 1.5 MB).
const MaxAnswerBytes = 256 << 20

// Client calls one server's API with one token. It is safe for concurrent use.
type Client struct {
	base, token string
	http        *http.Client
}

// New returns a client of the server at base (http://host:port) that sends token as
// "Authorization: Bearer". httpClient nil means a client with a 60 s timeout.
func New(base, token string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 60 * time.Second}
	}
	return &Client{base: strings.TrimRight(base, "/"), token: token, http: httpClient}
}

// Base is the server's base URL.
func (c *Client) Base() string { return c.base }

// Do sends body (nil, or a value sent as JSON) to path under /api/v1 ("/meetings?all=1")
// and decodes a JSON answer into out (may be nil). It returns the raw answer too. An
// error answer is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+"/api/v1"+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, MaxAnswerBytes))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if res.StatusCode >= 300 {
		return nil, httpapi.ParseError(res.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("%s %s: unreadable answer: %w", method, path, err)
		}
	}
	return raw, nil
}

// Sites is GET /sites: the whole tree, parents first.
func (c *Client) Sites(ctx context.Context) (SiteList, error) {
	var l SiteList
	_, err := c.Do(ctx, http.MethodGet, "/sites", nil, &l)
	return l, err
}

// ReplaceSites is PUT /sites: the tree becomes sites.
func (c *Client) ReplaceSites(ctx context.Context, sites []Site) (SiteSummary, error) {
	var sum SiteSummary
	_, err := c.Do(ctx, http.MethodPut, "/sites", struct {
		Sites []Site `json:"sites"`
	}{sites}, &sum)
	return sum, err
}

// Meetings is GET /meetings with query q (all, site, status, from, to).
func (c *Client) Meetings(ctx context.Context, q url.Values) ([]Meeting, error) {
	var l httpapi.MeetingList
	_, err := c.Do(ctx, http.MethodGet, "/meetings?"+q.Encode(), nil, &l)
	return l.Meetings, err
}

// Meeting is GET /meetings/{id}.
func (c *Client) Meeting(ctx context.Context, id string) (Meeting, error) {
	var m Meeting
	_, err := c.Do(ctx, http.MethodGet, meetingPath(id, ""), nil, &m)
	return m, err
}

// Schedule is POST /meetings with body (see MeetingRequest in docs/openapi.yaml); it
// returns the meeting booked and the raw answer.
func (c *Client) Schedule(ctx context.Context, body any) (Meeting, []byte, error) {
	var m Meeting
	raw, err := c.Do(ctx, http.MethodPost, "/meetings", body, &m)
	return m, raw, err
}

// Finish is POST /meetings/{id}/cancel or /end (verb "cancel" or "end").
func (c *Client) Finish(ctx context.Context, id, verb string) (Meeting, error) {
	var m Meeting
	_, err := c.Do(ctx, http.MethodPost, meetingPath(id, verb), nil, &m)
	return m, err
}

// RollCall is GET /meetings/{id}/rollcall.
func (c *Client) RollCall(ctx context.Context, id string) (RollCall, error) {
	var rc RollCall
	_, err := c.Do(ctx, http.MethodGet, meetingPath(id, "rollcall"), nil, &rc)
	return rc, err
}

// RollCallCSV is GET /meetings/{id}/rollcall?format=csv: the CSV file's bytes.
func (c *Client) RollCallCSV(ctx context.Context, id string) ([]byte, error) {
	return c.Do(ctx, http.MethodGet, meetingPath(id, "rollcall")+"?format=csv", nil, nil)
}

// JoinToken is POST /meetings/{id}/join-token: an operator's signaling token for one
// site of the meeting.
func (c *Client) JoinToken(ctx context.Context, meeting string, req JoinTokenRequest) (JoinToken, error) {
	var t JoinToken
	_, err := c.Do(ctx, http.MethodPost, meetingPath(meeting, "join-token"), req, &t)
	return t, err
}

// meetingPath is /meetings/{id}[/sub] with id escaped.
func meetingPath(id, sub string) string {
	p := "/meetings/" + url.PathEscape(id)
	if sub != "" {
		p += "/" + sub
	}
	return p
}
