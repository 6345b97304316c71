package recorder

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/at-wat/ebml-go/mkvcore"
	"github.com/at-wat/ebml-go/webm"
)

// cuesReserve is the room kept at the head of each file for the seek index, written at a
// clean stop: about 25 bytes per cue, one cue per cluster (a keyframe, or 5 s), so 64 KiB
// indexes more than 3 h. An index that does not fit is thinned by the library.
const cuesReserve = 64 << 10

// maxCluster bounds a cluster's span (ms): a cluster starts at each video keyframe and at
// least this often, so a player seeks within a few seconds even without the index.
const maxCluster = 5000

// trackSpec describes one track of a file.
type trackSpec struct {
	kind          string // "audio" or "video"
	codec         codec
	width, height int // video: from the first keyframe
	codecPrivate  []byte
}

// syncWriter is the file under the library's writer goroutine: buffered, flushed by the
// source goroutine every second so that a crash loses at most that, and positioned
// writes (the library patches the duration and the index at the end) go past the buffer.
type syncWriter struct {
	mu  sync.Mutex // guards buf and f between the library's goroutine and flushes
	f   *os.File
	buf *bufio.Writer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) WriteAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.buf.Flush(); err != nil {
		return 0, err
	}
	return w.f.WriteAt(p, off)
}

// Flush hands the buffered bytes to the kernel: they survive the process.
func (w *syncWriter) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Flush()
}

// Close flushes, syncs and closes the file. The library calls it when it finishes.
func (w *syncWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.buf.Flush()
	if serr := w.f.Sync(); err == nil {
		err = serr
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// partFile is one open Matroska/WebM file of a source. Owned by the source goroutine.
type partFile struct {
	name    string // file name inside the recording directory
	w       *syncWriter
	writers []webm.BlockWriteCloser // by track number − 1
	fatal   chan error              // errors from the library's writer goroutine
	failed  error
}

// openPart creates path and writes the header for tracks. H.264 needs the Matroska doc
// type; Opus and VP8 alone make a WebM file.
func openPart(path, name string, tracks []trackSpec, log *slog.Logger) (*partFile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	sw := &syncWriter{f: f, buf: bufio.NewWriterSize(f, 64<<10)}
	header := *webm.DefaultEBMLHeader
	entries := make([]webm.TrackEntry, 0, len(tracks))
	var main uint64
	for i, t := range tracks {
		n := uint64(i + 1)
		e := webm.TrackEntry{
			Name: t.kind, TrackNumber: n, TrackUID: n, CodecID: t.codec.matroskaID,
			CodecPrivate: t.codecPrivate,
		}
		switch t.kind {
		case "audio":
			e.TrackType = 2
			e.Audio = &webm.Audio{SamplingFrequency: 48000, Channels: 2}
		default:
			e.TrackType = 1
			e.Video = &webm.Video{PixelWidth: uint64(max(t.width, 1)), PixelHeight: uint64(max(t.height, 1))}
			if main == 0 {
				main = n
			}
		}
		if !t.codec.webm {
			header.DocType = "matroska"
		}
		entries = append(entries, e)
	}
	info := *webm.DefaultSegmentInfo
	info.MuxingApp, info.WritingApp = "cau recorder (ebml-go)", "cau"
	p := &partFile{name: name, w: sw, fatal: make(chan error, 1)}
	opts := []mkvcore.BlockWriterOption{
		mkvcore.WithEBMLHeader(&header),
		mkvcore.WithSegmentInfo(&info),
		// The source interleaves its tracks itself (with a longer window than the
		// library's sorter, which would drop video that samplebuilder held back).
		mkvcore.WithBlockInterceptor(nil),
		mkvcore.WithSeekHead(true),
		mkvcore.WithCues(cuesReserve),
		mkvcore.WithOnFatalHandler(func(err error) {
			select {
			case p.fatal <- err:
			default:
			}
		}),
		mkvcore.WithOnErrorHandler(func(err error) { log.Warn("recorder: block skipped", "file", name, "err", err) }),
	}
	if main != 0 {
		opts = append(opts, mkvcore.WithMinMaxClusterDuration(main, 0, maxCluster))
	} else {
		opts = append(opts, mkvcore.WithMinMaxClusterDuration(1, maxCluster, maxCluster))
	}
	ws, err := webm.NewSimpleBlockWriter(sw, entries, opts...)
	if err != nil {
		_ = sw.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.writers = ws
	return p, nil
}

// write appends one frame to track i (0-based) at ms (any origin: the file starts at its
// first frame).
func (p *partFile) write(i int, keyframe bool, ms int64, data []byte) error {
	if p.failed != nil {
		return p.failed
	}
	select {
	case err := <-p.fatal:
		p.failed = fmt.Errorf("write %s: %w", p.name, err)
		return p.failed
	default:
	}
	if _, err := p.writers[i].Write(keyframe, ms, data); err != nil {
		p.failed = fmt.Errorf("write %s: %w", p.name, err)
	}
	return p.failed
}

// close finishes the file: last cluster, duration and index, flush, sync.
func (p *partFile) close() error {
	for _, w := range p.writers {
		_ = w.Close() // the last one returns when the library has closed the file
	}
	select {
	case err := <-p.fatal:
		return fmt.Errorf("finish %s: %w", p.name, err)
	default:
	}
	return p.failed
}

// opusHead is the Opus identification header (RFC 7845 §5.1) that Matroska carries as
// CodecPrivate. WebRTC Opus is always 48 kHz; two channels decode mono and stereo
// packets alike. Pre-skip is 0: an RTP stream has no priming samples to drop.
func opusHead() []byte {
	h := make([]byte, 19)
	copy(h, "OpusHead")
	h[8] = 1 // version
	h[9] = 2 // channels
	binary.LittleEndian.PutUint16(h[10:], 0)
	binary.LittleEndian.PutUint32(h[12:], 48000)
	return h
}
