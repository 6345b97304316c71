package sfu

import (
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"
)

// Simulcast: a publisher sends one video source as up to maxLayers encodings (RIDs, e.g.
// q/h/f at a quarter, half and full resolution). Each layer arrives as its own
// TrackRemote and gets its own UpTrack (reader goroutine, packet cache, receive figures),
// grouped by a simulcast value. The caller sees one track: the first layer to arrive
// (the group's primary) is reported by OnTrack and is the handle to subscribe to; the
// other layers are never reported. A subscription to it forwards one layer at a time
// (downLayers), chosen by the subscriber's link allocator (allocator.go).

// maxLayers is the most layers a simulcast source has.
const maxLayers = 3

// layerOfRID is the layer index (0 = lowest) a RID names, -1 for a RID not known here.
// Both of the usual naming schemes: pion's examples and Chromium's q/h/f, LiveKit's l/m/h
// is not usable (its h is the high layer), so h is half as in q/h/f.
func layerOfRID(rid string) int8 {
	switch strings.ToLower(rid) {
	case "q", "l", "low", "0":
		return 0
	case "h", "m", "mid", "1":
		return 1
	case "f", "hi", "high", "2":
		return 2
	}
	return -1
}

// simulcast groups the layers of one published source.
type simulcast struct {
	primary *UpTrack // the layer reported to the caller; set at creation, read-only after
	// layers by index; a layer's slot is set when its first packet arrives (pion's OnTrack)
	// and cleared when it ends.
	layers [maxLayers]atomic.Pointer[UpTrack]
}

// layer returns layer i, nil if absent.
func (s *simulcast) layer(i int8) *UpTrack {
	if i < 0 || int(i) >= maxLayers {
		return nil
	}
	return s.layers[i].Load()
}

// top is the highest layer present, the primary if none is (all ended).
func (s *simulcast) top() *UpTrack {
	for i := maxLayers - 1; i >= 0; i-- {
		if up := s.layers[i].Load(); up != nil {
			return up
		}
	}
	return s.primary
}

// joinSimulcast files a new up track under its source's group when it is a simulcast
// layer, and says whether the caller should report it (not a simulcast layer, or the
// first layer of its source). Caller holds p.mu.
func (p *Peer) joinSimulcast(up *UpTrack, rid string) (report bool) {
	if rid == "" {
		return true
	}
	if p.sims == nil {
		p.sims = map[string]*simulcast{}
	}
	key := up.streamID + "\x00" + up.id
	g := p.sims[key]
	report = g == nil
	if g == nil {
		g = &simulcast{primary: up}
		p.sims[key] = g
		if p.dynQuit == nil && p.params.OnPublishLayers != nil && !p.params.Relay {
			p.dynQuit = make(chan struct{})
			go p.runDynacast(p.dynQuit)
		}
	}
	idx := layerOfRID(rid)
	if idx < 0 || g.layers[idx].Load() != nil { // an unknown RID takes the first free slot
		idx = -1
		for i := range g.layers {
			if g.layers[i].Load() == nil {
				idx = int8(i)
				break
			}
		}
	}
	if idx < 0 {
		p.log.Warn("simulcast layer beyond the third ignored", "track", up.id, "rid", rid)
		return false
	}
	up.sim, up.layer, up.rid = g, idx, rid
	g.layers[idx].Store(up)
	if !report {
		p.layerTracks[up] = struct{}{}
	}
	return report
}

// leaveSimulcast clears an ended layer's slot.
func (t *UpTrack) leaveSimulcast() {
	if t.sim != nil {
		t.sim.layers[t.layer].CompareAndSwap(t, nil)
	}
}

// Layers is how many simulcast layers the track's source sends now (1 for a track that
// is not simulcast).
func (t *UpTrack) Layers() int {
	if t.sim == nil {
		return 1
	}
	n := 0
	for i := range t.sim.layers {
		if t.sim.layers[i].Load() != nil {
			n++
		}
	}
	return n
}

// Layer is the layer index of this up track in its source (0 if not simulcast).
func (t *UpTrack) Layer() int { return int(t.layer) }

// RID is the simulcast RID of this up track ("" if not simulcast).
func (t *UpTrack) RID() string { return t.rid }

// SSRC is the publisher's SSRC of this up track.
func (t *UpTrack) SSRC() uint32 { return t.ssrc }

// gateNow is the Last-N gate that governs this track: a simulcast layer follows its
// source's primary, where the Selector put it.
func (t *UpTrack) gateNow() *gate {
	if t.sim != nil {
		return t.sim.primary.gate.Load()
	}
	return t.gate.Load()
}

// downLayers is a DownTrack's state when its source is simulcast.
//
// Which layers' readers reach it: the DownTrack sits in the downs of its current layer
// and, during a switch, of its target layer too; the allocator's goroutine changes that
// (setTarget, prune) under ctl. The readers of those (at most two) layers take turns at
// the rewriter under mu; an uncontended lock costs no allocation.
type downLayers struct {
	src *simulcast

	ctl    sync.Mutex          // serialises setTarget and prune (membership in layers' downs)
	member [maxLayers]*UpTrack // the layers whose downs hold this DownTrack; guarded by ctl

	// target is the layer wanted (allocator); current the layer forwarded now (-1 before
	// the first keyframe), written under mu, read anywhere.
	target, current atomic.Int32
	switches        atomic.Uint64
	// off is set while no layer is forwarded because nobody beyond the link needs the
	// source (setOff, under ctl); SetLayer ends it.
	off atomic.Bool

	mu sync.Mutex    // guards rw and the write to the subscriber
	rw layerRewriter // guarded by mu
}

func newDownLayers(src *simulcast, clockRate uint32) *downLayers {
	l := &downLayers{src: src}
	l.rw.clockRate = clockRate
	l.current.Store(-1)
	l.target.Store(-1)
	return l
}

// seedRandom gives a subscriber stream its random first sequence number and timestamp.
func seedRandom() (uint16, uint32) { return uint16(rand.Uint32()), rand.Uint32() }

// writeLayer is writeRTP for a simulcast source: one packet of layer track t. Called
// from t's fan-out.
func (d *DownTrack) writeLayer(t *UpTrack, hdr *rtp.Header, payload []byte, keyframe bool) writeResult {
	b := d.binding.Load()
	if b == nil || !d.sub.subConnected.Load() {
		return writeUnbound
	}
	s := d.sim
	l, target := t.layer, int8(s.target.Load())
	if l != target && int32(l) != s.current.Load() {
		return writeSkipped // a layer this subscriber is leaving or never took
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	first := !s.rw.started
	seq, ts, res := s.rw.rewrite(l, hdr.SequenceNumber, hdr.Timestamp, keyframe, target, t.readAt, seedRandom)
	switch res {
	case rewriteDrop:
		return writeSkipped
	case rewriteWait:
		return writeWaitingKeyframe
	}
	n, err := d.send(b, hdr, payload, seq, ts)
	if err != nil {
		return writeFailed
	}
	if n == 0 && first {
		s.rw.started = false // SRTP was not ready: the keyframe did not leave
		return writeUnbound
	}
	if res == rewriteSwitched {
		s.current.Store(int32(l))
		s.switches.Add(1)
		d.mapLayer(hdr.SequenceNumber, t)
	} else if m := d.mapping.Load(); m != nil && uint16(m.firstIn.Load()) != s.rw.firstInSeq {
		m.firstIn.Store(uint32(s.rw.firstInSeq)) // the rewriter's window moved up (seqAdvance)
	}
	d.packetsSent.Add(1)
	d.bytesSent.Add(uint64(d.scratch.MarshalSize() + len(payload)))
	return writeOK
}

// skippedLayer closes the numbering after t's reader skipped packets (Last-N pause or
// overload) and resumed at seq. Reader goroutine of t.
func (d *DownTrack) skippedLayer(t *UpTrack, seq uint16) {
	s := d.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.rw.started || s.rw.cur != t.layer {
		return
	}
	s.rw.skipped(t.layer, seq, t.skipped)
	d.mapLayer(seq, t)
}

// mapLayer publishes the rewriter's mapping for the NACK handler: from firstIn of layer
// t on, answered from t's cache. Caller holds d.sim.mu.
func (d *DownTrack) mapLayer(firstIn uint16, t *UpTrack) {
	m := newSeqMapping(firstIn, d.sim.rw.seqOffset, d.sim.rw.tsOffset)
	m.cache = t.cache
	d.mapping.Store(m)
}

// SetLayer asks for layer i of a simulcast source (the nearest present layer, below first);
// the switch happens at that layer's next keyframe, which is requested now. A no-op for a
// track that is not simulcast. Safe from any goroutine; the allocator calls it.
func (d *DownTrack) SetLayer(i int) {
	if d.sim != nil {
		d.setLayer(i, false)
	}
}

// setLayer is SetLayer; with cut, a step down also stops the layer forwarded now at once
// instead of at the lower layer's keyframe. The allocator cuts when the link overruns:
// the subscriber's picture of that layer is breaking already (its packets are lost or
// queued behind seconds of others), and every packet more of it fills the shaper's queue
// ahead of the keyframe the switch waits for, which then arrives late or loses packets
// itself. The subscriber sees the numbering go on unbroken at the keyframe; repairs of
// the layer left are no longer sent (its picture is given up).
func (d *DownTrack) setLayer(i int, cut bool) {
	s := d.sim
	s.ctl.Lock()
	defer s.ctl.Unlock()
	want := int8(min(max(i, 0), maxLayers-1))
	up := s.src.layer(want)
	for up == nil && want > 0 { // the nearest present layer below
		want--
		up = s.src.layer(want)
	}
	for up == nil && want < maxLayers-1 { // else the nearest above (only a higher one arrived yet)
		want++
		up = s.src.layer(want)
	}
	if up == nil {
		return
	}
	if s.off.Swap(false) {
		s.mu.Lock()
		s.rw.resume = true // whichever layer comes first, it starts at a keyframe
		s.mu.Unlock()
	}
	if s.member[want] != up {
		if err := up.addDown(d); err != nil { // asks the layer for a keyframe
			return
		}
		s.member[want] = up
	} else if int32(want) != s.current.Load() {
		up.RequestKeyframe()
	}
	s.target.Store(int32(want))
	if cur := s.current.Load(); cut && cur > int32(want) {
		if left := s.member[cur]; left != nil {
			left.removeDown(d)
			s.member[cur] = nil
		}
		s.mu.Lock()
		s.rw.resume = true // no packet of the layer left may follow: the next starts at a keyframe
		d.mapping.Store(nil)
		s.mu.Unlock()
	}
	d.prune()
}

// setOff stops forwarding the source: no layer's reader reaches the DownTrack until
// SetLayer, which resumes at a keyframe with the numbering continuous (the subscriber
// sees a pause, not a loss to NACK). Safe from any goroutine; the allocator calls it.
func (d *DownTrack) setOff() {
	s := d.sim
	s.ctl.Lock()
	defer s.ctl.Unlock()
	if s.off.Swap(true) {
		return
	}
	s.target.Store(-1)
	for i, up := range s.member {
		if up != nil {
			up.removeDown(d)
			s.member[i] = nil
		}
	}
	s.mu.Lock()
	s.current.Store(-1)
	s.rw.resume = true
	s.mu.Unlock()
}

// prune takes the DownTrack out of the downs of layers that are neither current nor
// target. Caller holds ctl.
func (d *DownTrack) prune() {
	s := d.sim
	cur, target := s.current.Load(), s.target.Load()
	for i, up := range s.member {
		if up != nil && int32(i) != cur && int32(i) != target {
			up.removeDown(d)
			s.member[i] = nil
		}
	}
}

// detach removes the DownTrack from every up track that feeds it.
func (d *DownTrack) detach() {
	if d.sim == nil {
		d.up.removeDown(d)
		return
	}
	d.sim.ctl.Lock()
	defer d.sim.ctl.Unlock()
	for i, up := range d.sim.member {
		if up != nil {
			up.removeDown(d)
			d.sim.member[i] = nil
		}
	}
}

// Layer is the layer forwarded now (-1 before the first keyframe; 0 for a track that is
// not simulcast) and the layer wanted.
func (d *DownTrack) Layer() (current, target int) {
	if d.sim == nil {
		return 0, 0
	}
	return int(d.sim.current.Load()), int(d.sim.target.Load())
}

// LayerSwitches counts the layer switches made (the first layer forwarded included).
func (d *DownTrack) LayerSwitches() uint64 {
	if d.sim == nil {
		return 0
	}
	return d.sim.switches.Load()
}

// keyframeSource is the up track a subscriber's keyframe request goes to: the layer it
// switches to, if a switch is under way (its picture goes on from that layer's keyframe:
// one of the layer left would only fill the link), else the layer it receives.
func (d *DownTrack) keyframeSource() *UpTrack {
	if d.sim == nil {
		return d.up
	}
	if up := d.sim.src.layer(int8(d.sim.target.Load())); up != nil {
		return up
	}
	if up := d.sim.src.layer(int8(d.sim.current.Load())); up != nil {
		return up
	}
	return d.up
}
