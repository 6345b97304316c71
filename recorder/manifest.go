package recorder

import (
	"time"

	"github.com/cau-project/cau/internal/jsonfile"
)

// ManifestName is the manifest's file name inside a recording directory.
const ManifestName = "recording.json"

// Recording states in the manifest.
const (
	StateRecording = "recording" // in progress, or the server stopped without finishing
	StateStopped   = "stopped"   // stopped cleanly: every file is complete
)

// Manifest describes a recording directory: what was recorded, when, and in which files.
// It is rewritten (atomically) whenever a file opens or closes, so after a crash it still
// names every file, with Complete false for those cut short.
type Manifest struct {
	Meeting string    `json:"meeting"`
	State   string    `json:"state"`
	Started time.Time `json:"started"`
	Stopped time.Time `json:"stopped,omitzero"`
	Files   []File    `json:"files"`
}

// File is one Matroska/WebM file of a source.
type File struct {
	Name   string `json:"name"`   // inside the recording directory
	Source string `json:"source"` // the stream group it records (a site's camera and mic, a screen)
	Site   string `json:"site,omitempty"`
	Part   int    `json:"part"` // 1 for a source's first file, then 2, …
	// Start is when the file's first frame was captured, on this server's clock: the
	// publisher's sender-report time corrected by its clock offset. Files of different
	// sources line up by Start.
	Start time.Time `json:"start"`
	// OffsetMs is Start − the recording's Started, in milliseconds.
	OffsetMs int64 `json:"offset_ms"`
	// DurationMs spans the first to the last frame written.
	DurationMs int64       `json:"duration_ms"`
	Complete   bool        `json:"complete"`
	Tracks     []TrackInfo `json:"tracks"`
	Error      string      `json:"error,omitempty"`
}

// TrackInfo gives a track's codec and what happened to it while recorded.
type TrackInfo struct {
	Kind   string `json:"kind"`  // audio or video
	Codec  string `json:"codec"` // MIME type
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
	// Sync says how the track was placed in time: "sr" (sender reports) or "arrival"
	// (none came in time).
	Sync      string `json:"sync"`
	Frames    int    `json:"frames"`
	Keyframes int    `json:"keyframes,omitempty"`
	// Gaps counts losses the bridge could not repair; after each the video waited for
	// a keyframe (KeyframeRequests asked for them).
	Gaps             int `json:"gaps,omitempty"`
	KeyframeRequests int `json:"keyframe_requests,omitempty"`
	// FramesSkipped were dropped while waiting for a keyframe.
	FramesSkipped int `json:"frames_skipped,omitempty"`
	// ResolutionChanges counts keyframes whose size differed from the one before.
	ResolutionChanges int `json:"resolution_changes,omitempty"`
	// PacketsDropped were lost by the recorder itself (its queue was full).
	PacketsDropped uint64 `json:"packets_dropped,omitempty"`
}

// ReadManifest reads the manifest of the recording in dir.
func ReadManifest(dir string) (Manifest, error) { return jsonfile.Read[Manifest](dir, ManifestName) }
