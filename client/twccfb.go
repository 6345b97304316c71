package client

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// twccInterval is how often a connection that receives media sends its transport-wide
// congestion control feedback, as pion's and browsers' receivers do.
const twccInterval = 100 * time.Millisecond

// wheelSlots divides twccInterval: the connections are spread over the slots, so that
// their feedback leaves spread over the interval as independent browsers' does, not in
// one burst.
const wheelSlots = 10

// twccFeedback sends TWCC feedback for one peer connection, in place of pion's
// twcc.SenderInterceptor: the same twcc.Recorder and the same feedback every 100 ms,
// without pion's goroutine and ticker per connection and channel hand-off per packet.
// pion's woke its goroutine for every received packet: 7–8% of the load tester's CPU at
// 1 × 150 and in a join storm (issue 11). Here the track's reader records the packet
// under mu, and one goroutine for the whole process (feedbackWheel) sends every
// connection's feedback in turn.
type twccFeedback struct {
	interceptor.NoOp
	wheel *feedbackWheel
	start time.Time

	mu     sync.Mutex // guards everything below; held while feedback is written
	rec    *twcc.Recorder
	writer interceptor.RTCPWriter
	slot   int  // the wheel's slot, while on the wheel
	onIt   bool // on the wheel: since the first packet recorded, until Close
	closed bool
}

// twccFactory makes a twccFeedback per peer connection, all on one wheel.
type twccFactory struct{ wheel *feedbackWheel }

// NewInterceptor implements interceptor.Factory.
func (f twccFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &twccFeedback{wheel: f.wheel, start: time.Now(), rec: twcc.NewRecorder(rand.Uint32())}, nil
}

// BindRTCPWriter implements interceptor.Interceptor.
func (t *twccFeedback) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	t.mu.Lock()
	t.writer = w
	t.mu.Unlock()
	return w
}

// BindRemoteStream implements interceptor.Interceptor: a stream that negotiated the
// transport-wide sequence number has each packet's number and arrival time recorded.
func (t *twccFeedback) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	var id uint8
	for _, e := range info.RTPHeaderExtensions {
		if e.URI == sdp.TransportCCURI {
			id = uint8(e.ID) //nolint:gosec // extension ids are 1–255
			break
		}
	}
	if id == 0 {
		return r
	}
	ssrc := info.SSRC
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err != nil {
			return n, a, err
		}
		if a == nil {
			a = interceptor.Attributes{}
		}
		hdr, err := a.GetRTPHeader(b[:n])
		if err != nil {
			return n, a, nil // not RTP this interceptor can read; the track's reader decides
		}
		if seq, ok := transportSeq(hdr, id); ok {
			t.record(ssrc, seq, time.Since(t.start).Microseconds())
		}
		return n, a, nil
	})
}

// transportSeq reads the transport-wide sequence number from a header's extension id.
func transportSeq(hdr *rtp.Header, id uint8) (uint16, bool) {
	ext := hdr.GetExtension(id)
	if len(ext) < 2 {
		return 0, false
	}
	return uint16(ext[0])<<8 | uint16(ext[1]), true
}

func (t *twccFeedback) record(ssrc uint32, seq uint16, arrivalUS int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.rec.Record(ssrc, seq, arrivalUS)
	if !t.onIt {
		// A connection goes on the wheel with its first packet: one that receives nothing
		// (a publisher connection) costs the wheel nothing.
		t.onIt = true
		t.wheel.add(t)
	}
}

// flush sends the feedback for what arrived since the last; called by the wheel.
func (t *twccFeedback) flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.writer == nil {
		return
	}
	if pkts := t.rec.BuildFeedbackPacket(); len(pkts) > 0 {
		_, _ = t.writer.Write(pkts, nil) // as pion's: a lost feedback packet is not retried
	}
}

// Close implements interceptor.Interceptor. No feedback is written after it returns:
// flush holds mu while it writes.
func (t *twccFeedback) Close() error {
	t.mu.Lock()
	t.closed = true
	onIt := t.onIt
	t.mu.Unlock()
	if onIt {
		t.wheel.remove(t)
	}
	return nil
}

// feedbackWheel sends the feedback of many connections from one goroutine: every
// twccInterval/wheelSlots it flushes the connections of the next slot, so each is
// flushed every twccInterval. The goroutine runs while a connection is on the wheel.
type feedbackWheel struct {
	mu      sync.Mutex // guards slots, n, next and running
	slots   [wheelSlots][]*twccFeedback
	n       int  // connections on the wheel
	next    int  // the slot the next connection added goes to (round robin)
	running bool // the goroutine runs
}

// rxWheel is the wheel of every connection in this process.
var rxWheel = &feedbackWheel{}

// add puts t on the wheel. Called with t.mu held; the wheel never takes t.mu while it
// holds its own.
func (w *feedbackWheel) add(t *twccFeedback) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t.slot = w.next
	w.next = (w.next + 1) % wheelSlots
	w.slots[t.slot] = append(w.slots[t.slot], t)
	w.n++
	if !w.running {
		w.running = true
		go w.run()
	}
}

// remove takes t off the wheel; t.slot is no longer written once t is closed.
func (w *feedbackWheel) remove(t *twccFeedback) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.slots[t.slot]
	for i, x := range s {
		if x == t {
			s[i] = s[len(s)-1]
			s[len(s)-1] = nil
			w.slots[t.slot] = s[:len(s)-1]
			w.n--
			return
		}
	}
}

// run flushes one slot per tick until the wheel is empty.
func (w *feedbackWheel) run() {
	tick := time.NewTicker(twccInterval / wheelSlots)
	defer tick.Stop()
	var batch []*twccFeedback // this goroutine's; reused
	for slot := 0; ; slot = (slot + 1) % wheelSlots {
		<-tick.C
		w.mu.Lock()
		if w.n == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		batch = append(batch[:0], w.slots[slot]...)
		w.mu.Unlock()
		for _, t := range batch {
			t.flush()
		}
		clear(batch) // let closed connections go
	}
}
