package sfu

import (
	"encoding/binary"
	"errors"
	"io"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// Layers by need, along the tree (issue 10). A relayed simulcast source crosses each relay
// link as one layer, chosen by the link's sending end; so that it is the highest layer
// some site beyond the link needs (and no more than the link carries), the two ends of a
// link tell each other, in RTCP APP packets on the link itself, keyed by the stream's SSRC
// on the link:
//
//   - downstream, "CAUR" (the sending bridge, with each allocator tick): the bit rates of
//     the source's layers as the origin bridge measures them. The bridge beyond then knows
//     that the single layer it receives belongs to a layered source, and its own links'
//     allocators can weigh the source's layers as if they chose them: each records the
//     layer it would take (DownTrack.want) and passes the rates on over its own relay links.
//   - upstream, "CAUN" (the receiving bridge, needTick): the highest layer that any of the
//     stream's subscribers there wants (its endpoints' allocators' choices, the needs its
//     own relay links reported, capped by what those links carry), or none at all (-1):
//     Last-N holds the stream back there, nobody subscribes, or every subscriber hides it.
//
// The sending end's allocator caps the stream at the reported layer and, for none, stops
// forwarding it on the link (the stream resumes at a keyframe, its numbering continuous).
// The need of a site at the far end of several links reaches the origin one link at a
// time; there a layer nobody needs is paused at the publisher (dynacast.go).
//
// A bridge that does not send these packets (an older one) leaves the need unknown: the
// link then carries the layer it fits, as before.

// The APP packets' names (RFC 3550 §6.7: four ASCII characters).
const (
	appRates = "CAUR"
	appNeed  = "CAUN"
)

const (
	// needTick is how often a relay link's receiving end looks at its streams' needs; a
	// changed need is sent at once, an unchanged one every needRefresh.
	needTick    = 100 * time.Millisecond
	needRefresh = 500 * time.Millisecond
	// needOffAfter is how long a stream must be needed by nobody before the link is told
	// to stop it: a subscriber moving between bridges, or a Last-N flap, costs no keyframe.
	needOffAfter = time.Second
	// needStale is when a need or a set of rates not refreshed stops counting (the other
	// end went away, or stopped sending them).
	needStale = 3 * time.Second
	// needUnknown is DownTrack.need's value before (or long after) the far end said.
	needUnknown = -2
)

// errShortApp is a CAUR or CAUN packet too short for its fields.
var errShortApp = errors.New("sfu: short layer APP packet")

// ratesPacket is the CAUR packet for a stream sent with ssrc whose layers have rates.
func ratesPacket(ssrc uint32, rates []float64) *rtcp.ApplicationDefined {
	data := make([]byte, 4*maxLayers)
	for i := 0; i < maxLayers && i < len(rates); i++ {
		binary.BigEndian.PutUint32(data[4*i:], uint32(min(max(rates[i], 0), float64(^uint32(0)))))
	}
	return &rtcp.ApplicationDefined{SSRC: ssrc, Name: appRates, Data: data}
}

// needPacket is the CAUN packet: layer is the highest needed, -1 for none.
func needPacket(ssrc uint32, layer int8) *rtcp.ApplicationDefined {
	return &rtcp.ApplicationDefined{SSRC: ssrc, Name: appNeed, Data: []byte{byte(layer), 0, 0, 0}}
}

// parseRates reads a CAUR packet's rates.
func parseRates(a *rtcp.ApplicationDefined) ([maxLayers]uint32, error) {
	var r [maxLayers]uint32
	if len(a.Data) < 4*maxLayers {
		return r, errShortApp
	}
	for i := range r {
		r[i] = binary.BigEndian.Uint32(a.Data[4*i:])
	}
	return r, nil
}

// parseNeed reads a CAUN packet's layer, clamped to -1..maxLayers-1.
func parseNeed(a *rtcp.ApplicationDefined) (int8, error) {
	if len(a.Data) < 1 {
		return 0, errShortApp
	}
	return min(max(int8(a.Data[0]), -1), maxLayers-1), nil
}

// remoteLayers is what a relayed track's sending bridge said about its source's layers
// (CAUR). Written by the track's RTCP reader, read by allocators.
type remoteLayers struct {
	rates [maxLayers]atomic.Uint32 // bit/s per layer, 0 = absent
	at    atomic.Int64             // unix nanos of the last report, 0 before any
}

// layered reports the rates of the source's layers when the track is one layer of a
// layered source relayed here and the report is fresh; ok is false otherwise.
func (t *UpTrack) layered(now time.Time, out []float64) (ok bool) {
	at := t.relayRates.at.Load()
	if at == 0 || now.Sub(time.Unix(0, at)) > needStale {
		return false
	}
	for i := range t.relayRates.rates {
		r := float64(t.relayRates.rates[i].Load())
		if i < len(out) {
			out[i] = r
		}
		ok = ok || r > 0
	}
	return ok
}

// noteRTCP reads what a relay link's sending bridge says about this track (CAUR). pkt is
// one compound RTCP packet read from the track's receiver. RTCP reader goroutine.
func (t *UpTrack) noteRTCP(pkt []byte, now time.Time) {
	pkts, err := rtcp.Unmarshal(pkt)
	if err != nil {
		return // the interceptors read it too; a malformed packet is theirs to log
	}
	for _, p := range pkts {
		a, ok := p.(*rtcp.ApplicationDefined)
		if !ok || a.Name != appRates || a.SSRC != t.ssrc {
			continue
		}
		r, err := parseRates(a)
		if err != nil {
			t.log.Debug("layer rates", "err", err)
			continue
		}
		for i := range r {
			t.relayRates.rates[i].Store(r[i])
		}
		t.relayRates.at.Store(now.UnixNano())
	}
}

// noteNeed records a CAUN packet from the bridge beyond this relay link. RTCP reader.
func (d *DownTrack) noteNeed(a *rtcp.ApplicationDefined, now time.Time) {
	if b := d.binding.Load(); b == nil || a.SSRC != b.ssrc {
		return
	}
	l, err := parseNeed(a)
	if err != nil {
		d.sub.log.Debug("layer need", "err", err)
		return
	}
	d.need.Store(int32(l))
	d.needAt.Store(now.UnixNano())
}

// needNow is the layer the bridge beyond this relay link needs of the stream (-1 none),
// needUnknown if it has not said lately.
func (d *DownTrack) needNow(now time.Time) int8 {
	at := d.needAt.Load()
	if at == 0 || now.Sub(time.Unix(0, at)) > needStale {
		return needUnknown
	}
	return int8(d.need.Load())
}

// SetMaxLayer caps the layer this subscription takes of a layered source (the tile the
// subscriber shows it in: a thumbnail needs no more than the low layer); -1 takes none
// (a hidden tile). The link's allocator applies it within a tick, and the bridges before
// send no more than the cap needs. Safe from any goroutine.
func (d *DownTrack) SetMaxLayer(i int) { d.maxLayer.Store(int32(min(max(i, -1), maxLayers-1))) }

// capAt is the highest layer the subscription may take now: the subscriber's own cap and,
// on a relay link, the need reported from beyond. -1: none.
func (d *DownTrack) capAt(now time.Time) int8 {
	c := int8(d.maxLayer.Load())
	if d.sub.params.Relay {
		if n := d.needNow(now); n != needUnknown {
			c = min(c, n)
		}
	}
	return c
}

// wantLayer is the layer this subscription wants of its source now, -1 for none: a
// simulcast subscription's target, a relayed layered one's choice (want); none while
// Last-N holds the track back or the link stopped it.
func (d *DownTrack) wantLayer() int8 {
	if d.Paused() {
		return -1
	}
	if d.sim != nil {
		if d.sim.off.Load() {
			return -1
		}
		return int8(d.sim.target.Load())
	}
	if d.held.Load() {
		return -1
	}
	return int8(d.want.Load())
}

// Held reports whether the track forwards nothing now: Last-N holds it back, or nobody
// beyond its link needs it (a relay link's stream stopped by need, a hidden tile).
func (d *DownTrack) Held() bool {
	return d.Paused() || d.held.Load() || (d.sim != nil && d.sim.off.Load())
}

// hold holds the subscription back (nobody beyond needs it) or lets it go on; it reports
// whether that changed. Allocator goroutine.
func (d *DownTrack) hold(on bool) bool {
	if d.sim == nil {
		return d.held.Swap(on) != on
	}
	if !on {
		return false // SetLayer resumes a simulcast subscription
	}
	if d.sim.off.Load() {
		return false
	}
	d.setOff()
	return true
}

// subtreeNeed is the highest layer anyone here wants of this (relayed) track: the max
// over its subscriptions; a local tap (the recorder) wants the top.
func (t *UpTrack) subtreeNeed() int8 {
	if len(*t.taps.Load()) > 0 {
		return maxLayers - 1
	}
	need := int8(-1)
	for _, d := range *t.downs.Load() {
		need = max(need, d.wantLayer())
	}
	return need
}

// needState is what the reporter last told the link about one track.
type needState struct {
	sent       int8 // needUnknown before the first report
	sentAt     time.Time
	lastWanted time.Time // when someone last wanted the track (its arrival, at first)
}

// reportNeeds is the goroutine of a relay link's receiving end: every needTick it works
// out each relayed video's need here and tells the sending bridge (CAUN) when it changed,
// and every needRefresh anyway. It ends with the peer.
func (p *Peer) reportNeeds(quit <-chan struct{}) {
	tick := time.NewTicker(needTick)
	defer tick.Stop()
	state := map[*UpTrack]*needState{}
	var pkts []rtcp.Packet
	pub := p.publisher() // a relay peer's, made in NewPeer
	for {
		select {
		case <-quit:
			return
		case now := <-tick.C:
			pkts = p.needPackets(now, state, pkts[:0])
			for len(pkts) > 0 {
				n := min(len(pkts), 32) // a compound packet well under the MTU
				if err := pub.WriteRTCP(pkts[:n]); err != nil && !errors.Is(err, io.ErrClosedPipe) {
					p.log.Debug("send layer need", "err", err)
				}
				pkts = pkts[n:]
			}
		}
	}
}

// needPackets appends the CAUN packets due now to out. Reporter goroutine.
func (p *Peer) needPackets(now time.Time, state map[*UpTrack]*needState, out []rtcp.Packet) []rtcp.Packet {
	ups := p.UpTracks()
	seen := make(map[*UpTrack]bool, len(ups))
	for _, up := range ups {
		if up.kind != webrtc.RTPCodecTypeVideo {
			continue
		}
		seen[up] = true
		st := state[up]
		if st == nil {
			st = &needState{sent: needUnknown, lastWanted: now}
			state[up] = st
		}
		need := up.subtreeNeed()
		if need >= 0 {
			st.lastWanted = now
		} else if now.Sub(st.lastWanted) < needOffAfter {
			if st.sent == needUnknown {
				continue // new here, its subscribers on their way: the link decides alone
			}
			need = max(st.sent, 0) // not for long enough to stop it
		}
		up.needOff.Store(need < 0)
		if need == st.sent && now.Sub(st.sentAt) < needRefresh {
			continue
		}
		st.sent, st.sentAt = need, now
		out = append(out, needPacket(up.ssrc, need))
	}
	for up := range state {
		if !seen[up] {
			delete(state, up)
		}
	}
	return out
}

// startNeeds starts a relay peer's need reporter; closing the returned channel ends it.
func (p *Peer) startNeeds() chan struct{} {
	quit := make(chan struct{})
	go p.reportNeeds(quit)
	return quit
}
