package sfu

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/sfu/speaker"
)

// slotRecord is what a slot subscriber saw on one of its tracks. The reader goroutine
// writes it under mu.
type slotRecord struct {
	mu     sync.Mutex
	kind   webrtc.RTPCodecType
	ssrc   webrtc.SSRC
	byTag  map[byte]int // packets received per publisher's tag
	lastTg byte
	// starts counts the packets that began another publisher's stream on the track, and
	// keyStarts those of them that began a keyframe (video).
	starts, keyStarts int
	// broken lists the steps between consecutive packets that were not a continuation
	// (sequence number +1..+100, timestamp not going back).
	broken  []string
	haveSeq bool
	lastSeq uint16
	lastTS  uint32
}

func (r *slotRecord) count(tag byte) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byTag[tag]
}

// slotWatcher records a slot subscriber's tracks by track id.
type slotWatcher struct {
	mu   sync.Mutex
	recs map[string]*slotRecord
}

func (w *slotWatcher) read(tr *webrtc.TrackRemote) {
	r := &slotRecord{kind: tr.Kind(), ssrc: tr.SSRC(), byTag: map[byte]int{}}
	w.mu.Lock()
	w.recs[tr.ID()] = r
	w.mu.Unlock()
	codec := codecKindOf(tr.Codec().MimeType)
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		at := 0
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			at = tagAt
		}
		if len(pkt.Payload) <= at {
			continue
		}
		tag := pkt.Payload[at]
		r.mu.Lock()
		if r.haveSeq {
			step := pkt.SequenceNumber - r.lastSeq
			if step == 0 || step > 100 || (step == 1 && int32(pkt.Timestamp-r.lastTS) < 0) {
				r.broken = append(r.broken, fmt.Sprintf("seq %d→%d ts %d→%d", r.lastSeq, pkt.SequenceNumber, r.lastTS, pkt.Timestamp))
			}
		}
		if tag != r.lastTg {
			r.starts++
			if tr.Kind() == webrtc.RTPCodecTypeVideo && isKeyframeStart(codec, pkt.Payload) {
				r.keyStarts++
			}
		}
		r.haveSeq, r.lastSeq, r.lastTS, r.lastTg = true, pkt.SequenceNumber, pkt.Timestamp, tag
		r.byTag[tag]++
		r.mu.Unlock()
	}
}

// heard sums the packets of tag received on the tracks of kind.
func (w *slotWatcher) heard(kind webrtc.RTPCodecType, tag byte) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, r := range w.recs {
		if r.kind == kind {
			n += r.count(tag)
		}
	}
	return n
}

// TestSlotsDiscussion is issue 10's bounded negotiation: a subscriber with slots in a
// discussion meeting of 41 publishers (above the 32 sites whose camera and microphone fill
// an answer's 64 m-sections) negotiates its 4 audio slots (AudioN 3 + the chair) and 2 video slots (VideoN) once, before anyone
// publishes, and never again: 40 publishers joining, talkers changing and one more
// publisher joining late renegotiate nothing. It hears the pinned chair and the talkers in
// its audio slots, a new talker within the Last-N bounds, and sees the chair's and the
// dominant speaker's video; each slot is one stream (its SSRC, and sequence numbers that
// continue across changes of source), and a video slot changes source only at a keyframe.
func TestSlotsDiscussion(t *testing.T) {
	const n, withVideo = 40, 4
	b := newTestBridge(t)
	sel := NewSelector(SelectorParams{Speaker: speaker.Params{AudioN: 3, VideoN: 2}, Logger: testLogger()})
	t.Cleanup(sel.Close)
	stream := func(i int) string { return fmt.Sprintf("stream-e%02d", i) }
	sel.Pin(stream(0), true) // the chair

	var offers atomic.Int64
	w := &slotWatcher{recs: map[string]*slotRecord{}}
	watcher := newTestEndpointWith(t, b, "watcher", nil, endpointOpts{
		onOffer: func() { offers.Add(1) }, onRemote: w.read,
	})
	var mapsMu sync.Mutex
	var maps int
	set, err := watcher.peer.AddSlots(SlotSetParams{Audio: 4, Video: 2, Self: "stream-watcher", OnMap: func([]SlotSource) {
		mapsMu.Lock()
		maps++
		mapsMu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	sel.Follow(set)
	eventually(t, 30*time.Second, func() string {
		if st := watcher.sub.ConnectionState(); st != webrtc.PeerConnectionStateConnected {
			return fmt.Sprintf("watcher's subscriber connection %s", st)
		}
		return ""
	})
	if got := strings.Count(watcher.sub.RemoteDescription().SDP, "\nm="); got != 6 {
		t.Fatalf("the slot subscriber's offer has %d m-sections, want 6 (4 audio + 2 video slots)", got)
	}

	eps := make([]*testEndpoint, 0, n+1)
	join := func(i int) *testEndpoint {
		e := newTestEndpoint(t, b, fmt.Sprintf("e%02d", i), func(up *UpTrack) { sel.Add(up, up.StreamID()) })
		e.tag = byte(i + 1)
		if i < withVideo {
			e.publish()
		} else {
			e.publishAudio()
		}
		return e
	}
	for i := range n {
		eps = append(eps, join(i))
	}
	eventually(t, 60*time.Second, func() string {
		sel.mu.Lock()
		got := len(sel.members)
		sel.mu.Unlock()
		if got < n+withVideo {
			return fmt.Sprintf("%d of %d published tracks at the selector", got, n+withVideo)
		}
		return ""
	})

	// The chair is heard and seen; the first talkers are heard.
	talk := func(loud ...int) {
		for i, e := range eps {
			e.loudness.Store(0)
			for _, l := range loud {
				if l == i {
					e.loudness.Store(100)
				}
			}
		}
	}
	// waitHeard waits until each of the endpoints is heard (kind) anew in the slots.
	waitHeard := func(when string, kind webrtc.RTPCodecType, who ...int) {
		t.Helper()
		before := map[int]int{}
		for _, i := range who {
			before[i] = w.heard(kind, byte(i+1))
		}
		eventually(t, 20*time.Second, func() string {
			for _, i := range who {
				if w.heard(kind, byte(i+1)) <= before[i]+5 {
					return fmt.Sprintf("%s: e%02d's %s does not arrive in a slot", when, i, kind)
				}
			}
			return ""
		})
	}
	talk(5, 6, 7)
	waitHeard("first talkers", webrtc.RTPCodecTypeAudio, 0, 5, 6, 7)
	waitHeard("chair", webrtc.RTPCodecTypeVideo, 0)

	// A talker change: e20 speaks alone, and e02 (with a camera) after it.
	talk(20)
	waitHeard("new talker", webrtc.RTPCodecTypeAudio, 0, 20)
	talk(2)
	waitHeard("talker with a camera", webrtc.RTPCodecTypeAudio, 2)
	waitHeard("dominant speaker's video", webrtc.RTPCodecTypeVideo, 0, 2)

	// A publisher joining late: no renegotiation either, and heard when it talks.
	eps = append(eps, join(n))
	talk(n)
	waitHeard("late joiner", webrtc.RTPCodecTypeAudio, n)

	if got := offers.Load(); got != 1 {
		t.Errorf("the slot subscriber got %d offers, want 1: publishers joining or talkers changing renegotiated it", got)
	}
	if got := len(watcher.sub.GetTransceivers()); got != 6 {
		t.Errorf("the slot subscriber has %d transceivers, want 6", got)
	}
	mapsMu.Lock()
	if maps < 3 {
		t.Errorf("the slot map was reported %d times, want one per change (at least 3)", maps)
	}
	mapsMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.recs) != 6 {
		t.Errorf("the slot subscriber received on %d tracks, want 6 (every slot used)", len(w.recs))
	}
	changed := 0
	for id, r := range w.recs {
		r.mu.Lock()
		if len(r.broken) > 0 {
			t.Errorf("slot %s is not one continuous stream: %v", id, r.broken)
		}
		if r.kind == webrtc.RTPCodecTypeVideo && r.keyStarts != r.starts {
			t.Errorf("video slot %s: %d of %d changes of source began at a keyframe", id, r.keyStarts, r.starts)
		}
		if r.starts > 1 {
			changed++
		}
		r.mu.Unlock()
	}
	if changed == 0 {
		t.Error("no slot changed source")
	}
}
