package sfu

import (
	"sync"
	"sync/atomic"

	"github.com/pion/interceptor"
)

// remoteOnly builds interceptors that create their inner interceptor, and so start its
// goroutine, only when the connection binds its first remote stream (issue 11). pion's
// RTCP receiver reports and TWCC feedback generator each start a ticker goroutine when a
// connection is built, although they only act on what the connection receives: most
// connections of a meeting receive nothing (a subscriber's publisher connection never
// carries a track; its subscriber connection only sends), so four of every subscriber's
// goroutines, with their stacks, timers and state, idled for the whole meeting.
//
// Only for interceptors that act on remote streams and RTCP alone: they must return the
// RTCP writer they are given unchanged, and do nothing with local streams (those are not
// passed on).
type remoteOnly struct{ inner interceptor.Factory }

// NewInterceptor implements interceptor.Factory.
func (f remoteOnly) NewInterceptor(id string) (interceptor.Interceptor, error) {
	return &lazyStart{factory: f.inner, id: id}, nil
}

// lazyStart is remoteOnly's interceptor. Its fields are guarded by mu.
type lazyStart struct {
	interceptor.NoOp
	factory interceptor.Factory
	id      string

	mu      sync.Mutex
	writer  interceptor.RTCPWriter
	pending []*lazyReader // readers bound before the inner interceptor existed
	inner   interceptor.Interceptor
	closed  bool
}

// lazyReader is one bound RTCP reader (pion binds one per sender and per receiver of a
// connection): straight through to next until the inner interceptor exists, then
// through the inner interceptor's reader bound to the same next.
type lazyReader struct {
	next  interceptor.RTCPReader
	inner atomic.Pointer[interceptor.RTCPReader] // set once, read by the reading goroutine
}

// Read implements interceptor.RTCPReader.
func (r *lazyReader) Read(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
	if in := r.inner.Load(); in != nil {
		return (*in).Read(b, a)
	}
	return r.next.Read(b, a)
}

// BindRTCPWriter keeps the writer for the inner interceptor.
func (l *lazyStart) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	l.mu.Lock()
	l.writer = w
	l.mu.Unlock()
	return w
}

// BindRTCPReader reads straight through until the inner interceptor exists, and through
// it from then on.
func (l *lazyStart) BindRTCPReader(next interceptor.RTCPReader) interceptor.RTCPReader {
	r := &lazyReader{next: next}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inner != nil {
		in := l.inner.BindRTCPReader(next)
		r.inner.Store(&in)
	} else {
		l.pending = append(l.pending, r)
	}
	return r
}

// BindRemoteStream starts the inner interceptor with the first remote stream.
func (l *lazyStart) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inner == nil && !l.closed {
		in, err := l.factory.NewInterceptor(l.id)
		if err != nil {
			return r // the factories used here never fail; without one the stream is still read
		}
		if l.writer != nil {
			in.BindRTCPWriter(l.writer)
		}
		for _, r := range l.pending {
			rd := in.BindRTCPReader(r.next)
			r.inner.Store(&rd)
		}
		l.pending = nil
		l.inner = in
	}
	if l.inner == nil {
		return r
	}
	return l.inner.BindRemoteStream(info, r)
}

// UnbindRemoteStream passes the stream's end on.
func (l *lazyStart) UnbindRemoteStream(info *interceptor.StreamInfo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inner != nil {
		l.inner.UnbindRemoteStream(info)
	}
}

// Close closes the inner interceptor, if it was started, and keeps it from starting.
func (l *lazyStart) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.inner != nil {
		return l.inner.Close()
	}
	return nil
}
