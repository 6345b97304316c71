package recorder

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/internal/jsonfile"
	"github.com/cau-project/cau/sfu"
)

// Config configures a Recording.
type Config struct {
	// Dir is the recording's directory; it is created (it must not hold a recording).
	Dir string
	// Meeting is the meeting id, for the manifest.
	Meeting string
	// Logger receives the recorder's logs; nil means slog.Default().
	Logger *slog.Logger
	// OnSpeech, if set, is told when a source starts and stops talking (its audio's
	// voice activity, at the time on this server's clock), for the timeline. It runs on
	// the source's goroutine and must not block.
	OnSpeech func(src Source, talking bool, at time.Time)
}

// ErrStopped is returned when adding a track to a stopped recording.
var ErrStopped = errors.New("recorder: recording stopped")

// ErrCodec is returned for a track whose codec the recorder cannot write.
var ErrCodec = errors.New("recorder: codec not recordable")

// Recording is one meeting's recording at a bridge: a directory of files, one or more
// per source, and their manifest. Safe for concurrent use.
type Recording struct {
	dir      string
	log      *slog.Logger
	started  time.Time
	onSpeech func(src Source, talking bool, at time.Time)

	// stopAt is when Stop was called (Unix ns; 0 before): sources ignore packets the
	// bridge read after it, so every file ends at the stop however long finishing takes.
	stopAt atomic.Int64

	mu       sync.Mutex // guards everything below
	manifest Manifest
	sources  map[string]*source
	stopped  bool
}

// Start creates the directory and the manifest of a new recording.
func Start(cfg Config) (*Recording, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("recording directory: %w", err)
	}
	if _, err := os.Stat(cfg.Dir + "/" + ManifestName); err == nil {
		return nil, fmt.Errorf("recording directory %s: already holds a recording", cfg.Dir)
	}
	now := time.Now()
	r := &Recording{
		dir: cfg.Dir, onSpeech: cfg.OnSpeech, log: log.With("component", "recorder", "meeting", cfg.Meeting), started: now,
		sources:  map[string]*source{},
		manifest: Manifest{Meeting: cfg.Meeting, State: StateRecording, Started: now.UTC(), Files: []File{}},
	}
	if err := jsonfile.Write(r.dir, ManifestName, r.manifest); err != nil {
		return nil, err
	}
	return r, nil
}

// Dir is the recording's directory.
func (r *Recording) Dir() string { return r.dir }

// Started is when the recording started.
func (r *Recording) Started() time.Time { return r.started }

// TrackSink takes the tracks of a recording; *Recording is one. The bridge hands tracks
// to a TrackSink (bridge.Agent.RecordStreams).
type TrackSink interface {
	AddTrack(src Source, up *sfu.UpTrack) error
}

// Source names a stream group: the tracks of one endpoint's camera and microphone, or
// its screen share. Tracks of one source share its files.
type Source struct {
	// Name is unique in the recording, e.g. "p1-d1.room1.camera"; file names come from it.
	Name string
	// Site is the site the endpoint belongs to (the timeline's and the layout's unit).
	Site string
}

// AddTrack records up as part of source. It subscribes a tap to up; the track is
// recorded until it ends or the recording stops.
func (r *Recording) AddTrack(src Source, up *sfu.UpTrack) error {
	source := src.Name
	c, ok := codecOf(up.Codec().MimeType)
	if !ok {
		return fmt.Errorf("%w: %s", ErrCodec, up.Codec().MimeType)
	}
	kind := "audio"
	if up.Kind() == webrtc.RTPCodecTypeVideo {
		kind = "video"
	}
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return ErrStopped
	}
	s := r.sources[source]
	if s == nil {
		s = newSource(r, source, src.Site)
		r.sources[source] = s
	}
	r.mu.Unlock()
	// Not under r.mu from here: the source goroutine takes it to update the manifest.
	tap, err := up.NewTap(tapDepth, s.in)
	if err != nil {
		return fmt.Errorf("tap %s: %w", up.ID(), err)
	}
	t := newTrack(kind, c, tap, up.RequestKeyframe)
	if r.onSpeech != nil && kind == "audio" {
		t.onSpeech = func(talking bool, at time.Time) { r.onSpeech(src, talking, at) }
	}
	errc := make(chan error, 1)
	select {
	case s.ctl <- func() { errc <- s.addTrack(t) }:
		err = <-errc
	case <-s.done:
		err = ErrStopped
	}
	if err != nil {
		tap.Close()
		return err
	}
	go func() {
		select {
		case <-tap.Done():
			select {
			case s.ctl <- func() { s.endTrack(t) }:
			case <-s.done:
			}
		case <-s.done:
		}
	}()
	r.log.Info("recorder: track added", "source", source, "kind", kind, "codec", c.mime)
	return nil
}

// Stop ends the recording: every file is finished and the manifest marked stopped.
// Safe to call more than once; later calls return the same manifest.
func (r *Recording) Stop() (Manifest, error) {
	r.mu.Lock()
	if r.stopped {
		m := r.manifest
		r.mu.Unlock()
		return m, nil
	}
	r.stopped = true
	r.stopAt.Store(time.Now().UnixNano())
	sources := make([]*source, 0, len(r.sources))
	for _, s := range r.sources {
		sources = append(sources, s)
	}
	r.mu.Unlock()
	// All sources stop together: finishing a file syncs it to disk, seconds on a slow
	// disk, and sources stopped one after another went on recording meanwhile (files
	// longer than the recording).
	var wg sync.WaitGroup
	for _, s := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case s.ctl <- s.stop:
			case <-s.done:
			}
			<-s.done
		}()
	}
	wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.manifest.State = StateStopped
	r.manifest.Stopped = time.Now().UTC()
	err := jsonfile.Write(r.dir, ManifestName, r.manifest)
	return r.copyManifest(), err
}

// Manifest returns the manifest as it stands.
func (r *Recording) Manifest() Manifest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.copyManifest()
}

func (r *Recording) copyManifest() Manifest {
	m := r.manifest
	m.Files = slices.Clone(m.Files)
	return m
}

// fileUpdate records (or replaces, by name) a file in the manifest and rewrites it.
func (r *Recording) fileUpdate(f File) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f.Start = f.Start.UTC()
	if i := slices.IndexFunc(r.manifest.Files, func(x File) bool { return x.Name == f.Name }); i >= 0 {
		r.manifest.Files[i] = f
	} else {
		r.manifest.Files = append(r.manifest.Files, f)
	}
	if err := jsonfile.Write(r.dir, ManifestName, r.manifest); err != nil {
		r.log.Error("recorder: manifest not written", "err", err)
	}
}

// fileFailed records a file that could not be created.
func (r *Recording) fileFailed(name string, err error) {
	r.fileUpdate(File{Name: name, Error: err.Error()})
}
