package bridge

import (
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/recorder"
	"github.com/cau-project/cau/sfu"
)

// recording is one RecordStreams call: which keys it wants, where they go.
type recording struct {
	pick func(key ids.StreamKey) (recorder.Source, bool)
	rec  recorder.TrackSink
}

// RecordStreams records at this bridge the streams for which pick names a source (the
// caller knows which keys belong to the meeting and to whom): those published here now
// and those published later, until stop is called. A stream that ends stops being
// recorded by itself; if it comes back (a publisher that reconnects) it is recorded again.
// pick runs under the agent's lock and must be quick.
func (a *Agent) RecordStreams(pick func(key ids.StreamKey) (recorder.Source, bool), rec recorder.TrackSink) (stop func()) {
	r := &recording{pick: pick, rec: rec}
	a.mu.Lock()
	if a.recordings == nil {
		a.recordings = map[*recording]struct{}{}
	}
	a.recordings[r] = struct{}{}
	for key, st := range a.streams {
		a.recordStream(r, key, st.up)
	}
	a.mu.Unlock()
	return func() {
		a.mu.Lock()
		delete(a.recordings, r)
		a.mu.Unlock()
	}
}

// recordNew hands a newly published stream to the recordings that want it. Caller holds a.mu.
func (a *Agent) recordNew(key ids.StreamKey, up *sfu.UpTrack) {
	for r := range a.recordings {
		a.recordStream(r, key, up)
	}
}

// recordStream hands one stream to one recording if it wants it. Caller holds a.mu;
// AddTrack only creates a tap and hands a track to the recording's goroutine.
func (a *Agent) recordStream(r *recording, key ids.StreamKey, up *sfu.UpTrack) {
	src, ok := r.pick(key)
	if !ok {
		return
	}
	if err := r.rec.AddTrack(src, up); err != nil {
		a.log.Warn("record stream", "key", key.String(), "err", err)
	}
}
