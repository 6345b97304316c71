package recorder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Library is the recordings root: one directory per meeting, one directory per
// recording inside it, named by its start time (UTC), e.g.
// <root>/m-2026-12-02/20261202T083000Z/recording.json. Methods are safe for concurrent
// use (they only touch the file system).
type Library struct {
	// Root is the recordings directory (default: recordings under the data directory).
	Root string
}

// Entry is one recording in the library.
type Entry struct {
	Meeting  string   `json:"meeting"`
	ID       string   `json:"id"` // the recording's directory name
	Manifest Manifest `json:"manifest"`
}

// ErrBadName is returned for a meeting or recording id that cannot name a directory
// (path separators, dots, control characters): such names never reach the file system.
var ErrBadName = errors.New("recorder: bad name")

// ErrNotFound is returned for a recording or file that does not exist.
var ErrNotFound = errors.New("recorder: not found")

var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func checkName(s string) error {
	if !safeName.MatchString(s) || strings.Contains(s, "..") {
		return fmt.Errorf("%w: %q", ErrBadName, s)
	}
	return nil
}

// idLayout names recordings by their start, sortable as text.
const idLayout = "20060102T150405Z"

// NewDir returns the directory for a recording of meeting starting at at (not created:
// Start creates it).
func (l Library) NewDir(meeting string, at time.Time) (dir, id string, err error) {
	if err := checkName(meeting); err != nil {
		return "", "", err
	}
	id = at.UTC().Format(idLayout)
	return filepath.Join(l.Root, meeting, id), id, nil
}

// Dir returns the directory of a recording, checking the names and that it exists.
func (l Library) Dir(meeting, id string) (string, error) {
	if err := checkName(meeting); err != nil {
		return "", err
	}
	if err := checkName(id); err != nil {
		return "", err
	}
	dir := filepath.Join(l.Root, meeting, id)
	if _, err := os.Stat(filepath.Join(dir, ManifestName)); err != nil {
		return "", fmt.Errorf("%w: recording %s/%s", ErrNotFound, meeting, id)
	}
	return dir, nil
}

// File returns the path of a file of a recording (a media file, the timeline, the
// composite), checking its name.
func (l Library) File(meeting, id, name string) (string, error) {
	dir, err := l.Dir(meeting, id)
	if err != nil {
		return "", err
	}
	if err := checkName(name); err != nil {
		return "", err
	}
	p := filepath.Join(dir, name)
	if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: %s/%s/%s", ErrNotFound, meeting, id, name)
	}
	return p, nil
}

// List returns the recordings of meeting, oldest first; none if it has none.
func (l Library) List(meeting string) ([]Entry, error) {
	if err := checkName(meeting); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(filepath.Join(l.Root, meeting))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list recordings of %s: %w", meeting, err)
	}
	var out []Entry
	for _, e := range ents {
		if !e.IsDir() || checkName(e.Name()) != nil {
			continue
		}
		m, err := ReadManifest(filepath.Join(l.Root, meeting, e.Name()))
		if err != nil {
			continue // not a recording (or one whose manifest was lost): not listed
		}
		out = append(out, Entry{Meeting: meeting, ID: e.Name(), Manifest: m})
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// All returns every recording of every meeting.
func (l Library) All() ([]Entry, error) {
	ents, err := os.ReadDir(l.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list recordings: %w", err)
	}
	var out []Entry
	for _, e := range ents {
		if !e.IsDir() || checkName(e.Name()) != nil {
			continue
		}
		rs, err := l.List(e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// Delete removes a recording with all its files.
func (l Library) Delete(meeting, id string) error {
	dir, err := l.Dir(meeting, id)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("delete recording %s/%s: %w", meeting, id, err)
	}
	_ = os.Remove(filepath.Join(l.Root, meeting)) // only succeeds once empty
	return nil
}

// Expire deletes the recordings that ended (or, if never stopped, started) before
// now − maxAge and returns them; a recording still in progress is never deleted, nor is
// anything when maxAge ≤ 0 (keep forever). The caller audits each deletion.
func (l Library) Expire(now time.Time, maxAge time.Duration, active func(meeting, id string) bool) ([]Entry, error) {
	if maxAge <= 0 {
		return nil, nil
	}
	all, err := l.All()
	if err != nil {
		return nil, err
	}
	var gone []Entry
	var errs []error
	for _, e := range all {
		end := e.Manifest.Stopped
		if end.IsZero() {
			end = e.Manifest.Started
		}
		if now.Sub(end) < maxAge || active != nil && active(e.Meeting, e.ID) {
			continue
		}
		if err := l.Delete(e.Meeting, e.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		gone = append(gone, e)
	}
	return gone, errors.Join(errs...)
}
