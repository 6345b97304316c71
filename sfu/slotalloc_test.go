package sfu

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/sfu/speaker"
)

// TestAllocatorCountsSlotRates: the allocator weighs a video slot fed by a simulcast
// source as a simulcast subscription (the source's layer rates as measured, capped by the
// tile, the pinned source first), counts an audio slot's rate as the link's other
// traffic, and leaves out a hidden tile's slot, whose source's top layer still counts in
// what the estimate may grow to.
func TestAllocatorCountsSlotRates(t *testing.T) {
	p := &Peer{bridge: &Bridge{}}
	a := newAllocator(p)
	src := &simulcast{}
	for i := range maxLayers {
		up := &UpTrack{kind: webrtc.RTPCodecTypeVideo, layer: int8(i), sim: src}
		src.layers[i].Store(up)
	}
	src.primary = src.layer(0)
	g := &gate{}
	g.pinned.Store(true)
	src.primary.gate.Store(g)
	slot := func(kind webrtc.RTPCodecType, up *UpTrack, maxLayer int32) *Slot {
		s := &Slot{kind: kind, sub: p, src: up}
		s.maxLayer.Store(maxLayer)
		return s
	}
	shown := slot(webrtc.RTPCodecTypeVideo, src.primary, 1) // a middle-sized tile
	hidden := slot(webrtc.RTPCodecTypeVideo, src.primary, -1)
	audio := slot(webrtc.RTPCodecTypeAudio, &UpTrack{kind: webrtc.RTPCodecTypeAudio}, maxLayers-1)
	p.slots = map[*Slot]struct{}{shown: {}, hidden: {}, audio: {}}

	t0 := time.Now()
	if slots, _, _ := a.slotStreams(t0, 0, true); len(slots) != 1 {
		t.Fatalf("first round: %d slots allocated, want 1", len(slots))
	}
	// Half a second of traffic: 100, 500 and 1,200 kbit/s on the layers (no packet
	// counted: the rates are the bytes' alone), 40 kbit/s in the audio slot.
	const dt = 0.5
	for i, kbps := range []uint64{100, 500, 1200} {
		src.layer(int8(i)).bytes.Add(kbps * 1000 / 8 / 2)
	}
	audio.bytesSent.Add(40 * 1000 / 8 / 2)
	a.streams = a.streams[:0]
	slots, others, want := a.slotStreams(t0.Add(time.Second/2), dt, false)
	if len(slots) != 1 || slots[0] != shown || len(a.streams) != 1 {
		t.Fatalf("%d slots allocated (%d streams), want the shown video slot alone", len(slots), len(a.streams))
	}
	st := a.streams[0]
	if got := fmt.Sprint(st.Rates); got != "[100000 500000 0]" {
		t.Errorf("the slot's layer rates %s, want [100000 500000 0] (the top layer above the tile's cap)", got)
	}
	if st.Priority != 2 {
		t.Errorf("the pinned source's slot has priority %d, want 2", st.Priority)
	}
	if others != 40_000 {
		t.Errorf("other traffic %.0f bit/s, want the audio slot's 40000", others)
	}
	if want != 2*1_200_000 {
		t.Errorf("the slots may grow the estimate to %.0f bit/s, want both video slots' top layers (2400000)", want)
	}

	// A camera relayed from the bridge before (one track, its layer switched there) is
	// weighed by the rates that bridge reports; the slot's choice becomes its feeder's
	// want, which the relay link's need carries back.
	relayed := &UpTrack{kind: webrtc.RTPCodecTypeVideo}
	for i, r := range []uint32{150_000, 600_000, 1_300_000} {
		relayed.relayRates.rates[i].Store(r)
	}
	now := t0.Add(time.Second)
	relayed.relayRates.at.Store(now.UnixNano())
	rs := slot(webrtc.RTPCodecTypeVideo, relayed, maxLayers-1)
	feeder := &DownTrack{up: relayed, sub: p, slot: rs}
	rs.cur = feeder
	p.slots = map[*Slot]struct{}{rs: {}}
	a.streams = a.streams[:0]
	slots, _, _ = a.slotStreams(now, dt, false)
	if len(slots) != 1 || fmt.Sprint(a.streams[0].Rates) != "[150000 600000 1.3e+06]" {
		t.Fatalf("relayed source: %d slots, rates %v", len(slots), a.streams)
	}
	rs.choose(2)
	if rs.chosen() != 2 || feeder.wantLayer() != 2 || rs.forwarded() != -1 {
		t.Errorf("relayed source: chosen %d, the feeder wants %d, counted at %d; want 2, 2, not counted here",
			rs.chosen(), feeder.wantLayer(), rs.forwarded())
	}
}

// TestSlotCarriesH264: a video slot forwards an H.264 publisher to a subscriber that
// negotiated H.264 besides VP8, on the slot's one SSRC with H.264's payload type; the
// subscriber's track takes the codec from the payload type. The change from a VP8 source
// starts at the H.264 source's keyframe, the numbering continuous.
func TestSlotCarriesH264(t *testing.T) {
	b := newTestBridge(t)
	sel := NewSelector(SelectorParams{Speaker: speaker.Params{AudioN: 1, VideoN: 1}, Logger: testLogger()})
	t.Cleanup(sel.Close)
	var mu sync.Mutex
	var mimes []string // the codec of each run of packets, in order
	var ssrcs = map[webrtc.SSRC]bool{}
	var lastSeq uint16
	var broken, offKey int
	watcher := newTestEndpointWith(t, b, "watcher", nil, endpointOpts{onRemote: func(tr *webrtc.TrackRemote) {
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			mime := tr.Codec().MimeType
			mu.Lock()
			if n := len(mimes); n == 0 || mimes[n-1] != mime {
				if n > 0 && pkt.SequenceNumber != lastSeq+1 {
					broken++
				}
				if !isKeyframeStart(codecKindOf(mime), pkt.Payload) {
					offKey++
				}
				mimes = append(mimes, mime)
			}
			ssrcs[tr.SSRC()], lastSeq = true, pkt.SequenceNumber
			mu.Unlock()
		}
	}})
	set, err := watcher.peer.AddSlots(SlotSetParams{Video: 1, Self: "watcher"})
	if err != nil {
		t.Fatal(err)
	}
	sel.Follow(set)
	sel.Pin("vp8", true)
	for _, mime := range []string{webrtc.MimeTypeVP8, webrtc.MimeTypeH264} {
		source := strings.ToLower(strings.TrimPrefix(mime, "video/"))
		e := newTestEndpoint(t, b, source, func(up *UpTrack) { sel.Add(up, source) })
		e.publishVideo(mime)
	}
	seen := func(want string) func() string {
		return func() string {
			mu.Lock()
			defer mu.Unlock()
			if n := len(mimes); n > 0 && strings.EqualFold(mimes[n-1], want) {
				return ""
			}
			return fmt.Sprintf("the slot carries %v, want %s now", mimes, want)
		}
	}
	eventually(t, 30*time.Second, seen(webrtc.MimeTypeVP8))
	sel.Pin("vp8", false)
	sel.Pin("h264", true)
	eventually(t, 15*time.Second, seen(webrtc.MimeTypeH264))
	mu.Lock()
	defer mu.Unlock()
	t.Logf("the slot carried %v", mimes)
	if broken != 0 || offKey != 0 || len(ssrcs) != 1 {
		t.Errorf("codec changes %v: %d with the numbering broken, %d off a keyframe, %d SSRCs", mimes, broken, offKey, len(ssrcs))
	}
}
