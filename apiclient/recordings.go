package apiclient

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/cau-project/cau/internal/httpapi"
)

// The recording views (see docs/openapi.yaml, tag recordings).
type (
	// RecordingStatus says whether a meeting is being recorded.
	RecordingStatus = httpapi.RecordingStatus
	// Recording is one recording of a meeting, with its files.
	Recording = httpapi.Recording
	// RecordingFile is one file of a recording.
	RecordingFile = httpapi.RecordingFile
)

// RecordingStatus is GET /meetings/{id}/recording.
func (c *Client) RecordingStatus(ctx context.Context, meeting string) (RecordingStatus, error) {
	var st RecordingStatus
	_, err := c.Do(ctx, http.MethodGet, meetingPath(meeting, "recording"), nil, &st)
	return st, err
}

// Record is POST /meetings/{id}/recording/start or /stop (verb "start" or "stop").
func (c *Client) Record(ctx context.Context, meeting, verb string) (RecordingStatus, error) {
	var st RecordingStatus
	_, err := c.Do(ctx, http.MethodPost, meetingPath(meeting, "recording/"+verb), nil, &st)
	return st, err
}

// Recordings is GET /meetings/{id}/recordings: the meeting's record, oldest first.
func (c *Client) Recordings(ctx context.Context, meeting string) ([]Recording, error) {
	var l httpapi.RecordingList
	_, err := c.Do(ctx, http.MethodGet, meetingPath(meeting, "recordings"), nil, &l)
	return l.Recordings, err
}

// Compose is POST /meetings/{id}/recordings/{rec}/compose: the composite starts rendering.
func (c *Client) Compose(ctx context.Context, meeting, rec string) error {
	_, err := c.Do(ctx, http.MethodPost, meetingPath(meeting, "recordings/"+url.PathEscape(rec)+"/compose"), nil, nil)
	return err
}

// DownloadRecordingFile is GET /meetings/{id}/recordings/{rec}/files/{name}: the file is
// copied to w as it arrives. It returns the bytes written.
func (c *Client) DownloadRecordingFile(ctx context.Context, meeting, rec, name string, w io.Writer) (int64, error) {
	path := meetingPath(meeting, "recordings/"+url.PathEscape(rec)+"/files/"+url.PathEscape(name))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/v1"+path, nil)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	// A recording outlasts the client's usual answer timeout: no timeout but ctx's.
	hc := *c.http
	hc.Timeout = 0
	res, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", path, err)
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		raw, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		return 0, httpapi.ParseError(res.StatusCode, raw)
	}
	n, err := io.Copy(w, res.Body)
	if err != nil {
		return n, fmt.Errorf("GET %s: %w", path, err)
	}
	return n, nil
}
