package sfu

import (
	"errors"
	"io"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/internal/tick"
	"github.com/cau-project/cau/sfu/bwe"
)

// allocator is one subscriber link's bandwidth estimate and the layer choice that fits it
// (package bwe), for a Peer with simulcast subscriptions: an endpoint's subscriber
// connection, or the sending side of a relay link to another bridge, which then carries
// each source once, at the layer the link fits.
//
// Every bwe.Interval it reads the link's TWCC counters (hopstats), updates the estimate,
// measures each layer's rate as the bridge receives it and what the link's other tracks
// (audio, video that is not simulcast) take, and moves each simulcast subscription to
// the layer the rest of the estimate allows. Its goroutine owns everything but the
// published figures.
type allocator struct {
	p    *Peer
	est  *bwe.Estimator
	quit chan struct{}
	once sync.Once

	last   time.Time
	layers map[*UpTrack]counterSample   // each layer's received bytes at the last tick
	others map[*DownTrack]counterSample // bytes sent on the other tracks at the last tick
	// The same for the peer's slots (slotalloc.go): the layers of the video slots'
	// sources, and the bytes sent on the other slots; nil until the first round.
	slotLayers map[*UpTrack]counterSample
	slotOthers map[*Slot]counterSample
	streams    []bwe.Stream
	choice     []int

	estimate atomic.Uint64 // bit/s, published for Peer.Estimate

	// probe is the probe running or finished and not yet read (probe.go), nil if none;
	// probes counts those read, ok and failed (published for Peer.Probes).
	probe  *probe
	probes [2]atomic.Uint64
	cur    []int // the layer each subscription keeps this tick (scratch)
	// swapAbove is the highest priority of a subscription this tick raises (probeFirst),
	// noSwap if none: the choice's step down of one of lower priority is taken with it.
	swapAbove int

	// forwarded is this link's share of Metrics.LayerForwarded (subscriptions per layer).
	forwarded [maxLayers]int
	link      string // "endpoint" or "relay", the metrics' link label
}

// counterSample is a track's counters at a tick, and for a layer its smoothed rate.
type counterSample struct {
	bytes, packets uint64
	rate           float64
}

// rtpOverhead is what a packet costs on the wire beyond its payload, for the rates the
// estimate is compared with: RTP header and extensions, SRTP tag, UDP and IP.
const rtpOverhead = 12 + 8 + 10 + 8 + 20

// raiseHeadroom is the share of the budget a raise may use: a layer's rate swings with
// keyframes and motion, so a link is not filled to the last bit.
const raiseHeadroom = 0.85

// minLayerRate is the least rate (bit/s) of a layer that counts as sent: a publisher
// that stopped a layer (a browser short of uplink drops its top one) sends nothing on it.
const minLayerRate = 8_000

func newAllocator(p *Peer) *allocator {
	a := &allocator{p: p, est: bwe.New(), quit: make(chan struct{}),
		layers: map[*UpTrack]counterSample{}, others: map[*DownTrack]counterSample{}}
	a.estimate.Store(uint64(a.est.Bitrate()))
	a.link = "endpoint"
	if p.params.Relay {
		a.link = "relay"
	}
	return a
}

func (a *allocator) stop() { a.once.Do(func() { close(a.quit) }) }

// metrics is the bridge's, nil when none (or built by hand without the simulcast ones).
func (a *allocator) metrics() *Metrics {
	if m := a.p.bridge.metrics; m != nil && m.LayerChanges != nil {
		return m
	}
	return nil
}

// count publishes this link's subscriptions and video slots per forwarded layer (nil
// subs: none, as the link closes).
func (a *allocator) count(subs []allocSub) {
	m := a.metrics()
	if m == nil {
		return
	}
	var now [maxLayers]int
	for _, d := range subs {
		if cur := d.forwarded(); cur >= 0 {
			now[cur]++
		}
	}
	for i := range now {
		if diff := now[i] - a.forwarded[i]; diff != 0 {
			m.LayerForwarded.WithLabelValues(a.link, strconv.Itoa(i)).Add(float64(diff))
		}
	}
	a.forwarded = now
}

// pollEvery is how often the allocator looks at its link's queue between rounds
// (bwe.Estimator.NoteQueue): a queue counts as overuse only once it has lasted, and a
// look every round (bwe.Interval) would make that a second.
const pollEvery = 100 * time.Millisecond

func (a *allocator) run() {
	defer a.count(nil)
	tick.Every(a.quit, pollEvery, a.poll)
}

// poll runs a round every bwe.Interval, and notes the link's queue in between.
func (a *allocator) poll(now time.Time) {
	switch {
	case a.last.IsZero() || now.Sub(a.last) >= bwe.Interval-pollEvery/2:
		a.tick(now)
	case a.p.subHop != nil:
		a.est.NoteQueue(a.sample(now))
	}
}

// sample is the link's counters now, for the estimator.
func (a *allocator) sample(now time.Time) bwe.Sample {
	out := a.p.subHop.Stats().Out
	return bwe.Sample{At: now, Bytes: out.Bytes, Packets: out.Packets, Reported: out.Reported, Lost: out.Lost,
		QueueDelay: out.QueueDelay}
}

// tick is one round: estimate, measure, choose, apply.
func (a *allocator) tick(now time.Time) {
	dt := now.Sub(a.last).Seconds()
	first := a.last.IsZero()
	a.last = now
	var sims []*DownTrack
	var others float64
	remote := make([]float64, maxLayers)
	for _, d := range a.p.DownTracks() {
		// A relayed layer of a layered source is weighed like a simulcast subscription
		// (need.go): its cost counts as the layer chosen, not in others.
		if d.sim == nil && (d.up.kind != webrtc.RTPCodecTypeVideo || !d.up.layered(now, remote)) {
			if d.up.kind == webrtc.RTPCodecTypeVideo {
				// A video without layers still stops when nobody beyond needs it.
				a.stopped(d, d.capAt(now) < 0)
			}
			c := counterSample{bytes: d.BytesSent(), packets: d.PacketsSent()}
			if prev, ok := a.others[d]; ok && !first {
				others += rate(prev, c, dt)
			}
			a.others[d] = c
			continue
		}
		if d.Paused() {
			// Last-N holds it back: it costs nothing now. A tile hidden meanwhile is
			// stopped already, so that the gate's opening forwards nothing to it before
			// the next round (the layer it had would flow until then).
			if d.capAt(now) < 0 {
				a.stopped(d, true)
			}
			continue
		}
		sims = append(sims, d)
	}
	a.streams = a.streams[:0]
	a.measure(sims, dt, first, now)
	if a.p.params.Relay && !first {
		a.sendRates(sims)
	}
	// The estimate may grow to what every stream's top layer would take, caps or not: a
	// subscriber that enlarges a tile, or a site beyond that asks for more, then gets it
	// at the next keyframe, not after the estimate has climbed.
	want := others
	kept := sims[:0]
	for i, d := range sims {
		st := a.streams[i]
		for l := len(st.Rates) - 1; l >= 0; l-- {
			if st.Rates[l] > 0 {
				want += st.Rates[l]
				break
			}
		}
		if !a.capStream(d, st.Rates, now) {
			continue // nobody beyond needs it: stopped, costs nothing
		}
		a.streams[len(kept)] = st
		kept = append(kept, d)
	}
	sims, a.streams = kept, a.streams[:len(kept)]
	// The video slots take their layers from the same estimate (slotalloc.go).
	slots, slotOthers, slotWant := a.slotStreams(now, dt, first)
	others += slotOthers
	want += slotOthers + slotWant
	subs := make([]allocSub, 0, len(sims)+len(slots))
	for _, d := range sims {
		subs = append(subs, d)
	}
	for _, s := range slots {
		subs = append(subs, s)
	}
	if a.p.subHop != nil {
		a.est.Update(a.sample(now), want)
	}
	probing := a.probeDone(now)
	est := a.est.Bitrate()
	a.estimate.Store(uint64(est))
	m := a.metrics()
	if m != nil {
		m.LinkEstimate.WithLabelValues(a.link).Observe(est)
	}
	a.count(subs)
	if first || len(subs) == 0 {
		return
	}
	if a.p.bridge.fixedTop {
		for _, d := range subs {
			d.choose(maxLayers - 1) // adaptation off: the top layer present, whatever the link
		}
		return
	}
	budget := est - others
	keep := bwe.Allocate(budget, a.streams, nil)
	// A link that overran steps down to what fits with a raise's headroom: the rate that
	// crossed while the queue filled still counts some of what left before, and a layer
	// that fits only just would overrun it again, another keyframe later.
	down := keep
	if a.est.Overrun() {
		down = bwe.Allocate(budget*raiseHeadroom, a.streams, nil)
	}
	// Raises within headroom, or up to what a probe or the traffic has shown the link
	// carries (never beyond the estimate: keep would take the raise back).
	a.choice = bwe.Allocate(math.Max(budget*raiseHeadroom, math.Min(a.est.Proven, est)-others), a.streams, a.choice)
	hold := a.probeFirst(now, subs, keep, others, probing)
	if hold && a.probe == nil {
		// The raises wait for a probe that may not start yet (the back-off after a failed
		// one): take those the link has shown it carries meanwhile. Else a choice grown
		// past what the probes could prove (a pinned source to the top beside another's
		// middle layer on 1.6 Mbit/s) held even the proven middle layer back for 30 s.
		a.choice = bwe.Allocate(math.Min(budget*raiseHeadroom, a.est.Proven-others), a.streams, a.choice)
		hold = a.probeFirst(now, subs, keep, others, probing)
	}
	for i, d := range subs {
		target := d.chosen()
		next, cut := target, false
		switch {
		case keep[i] < 0:
			continue // no layer measured yet
		case target < 0:
			next = keep[i] // it resumes
		case layerRate(a.streams[i], target) == 0:
			next = keep[i] // above the cap now (a smaller tile, a need that fell), or no longer sent
		case down[i] < target && a.est.Overrun():
			// The link drops or queues what is sent of it: stop it now, so that the
			// queue drains before the lower layer's keyframe (simulcast.go).
			next, cut = down[i], true
		case keep[i] < target && a.est.Congested():
			next = keep[i] // the link no longer carries it: down now
		case a.swaps(i, target) && !hold:
			next = a.choice[i] // makes room for a raise of higher priority (a pin): a swap
		case keep[i] < target:
			continue // short of the estimate but carried without loss: the estimate lags
		case a.choice[i] > target && !hold && !a.est.Congested():
			// (Not on a round that shows loss or a queue: a step down with headroom
			// went below what the estimate fits, and must not come straight back.)
			next = a.choice[i] // up only with headroom, and once the link has carried the rate
		}
		if next != target && target >= 0 {
			if m != nil {
				dir := "up"
				if next < target {
					dir = "down"
				}
				m.LayerChanges.WithLabelValues(a.link, dir).Inc()
			}
			a.p.log.Debug("layer", "track", d.allocName(), "from", target, "to", next, "estimate", int(est),
				"loss", math.Round(a.est.Loss*1000)/1000, "cut", cut, "proven", int(a.est.Proven))
		}
		if cut {
			d.stepDown(next)
		} else {
			d.choose(next)
		}
	}
	if a.est.Overrun() {
		// What the overrun interval acknowledged counts the queue built before the
		// cut: only what the link carries now is proven, a raise above it is probed.
		carried := others
		for i, d := range sims {
			carried += layerRate(a.streams[i], d.chosen())
		}
		a.est.Unprove(carried)
	}
}

// measure fills a.streams, one per subscription of sims: the rates of its source's
// layers (measured here for a simulcast source, as the sending bridge reported them for
// a relayed one) and its priority. Allocator goroutine.
func (a *allocator) measure(sims []*DownTrack, dt float64, first bool, now time.Time) {
	seen := map[*UpTrack]bool{}
	for _, d := range sims {
		rates := make([]float64, maxLayers)
		if d.sim == nil {
			d.up.layered(now, rates)
		}
		for i := range rates {
			if d.sim == nil {
				break
			}
			up := d.sim.src.layer(int8(i))
			if up == nil {
				continue
			}
			seen[up] = true
			c := counterSample{bytes: up.bytes.Load(), packets: up.packets.Load()}
			if prev, ok := a.layers[up]; ok && !first {
				// Half the last interval, half the past: one late burst of packets (a
				// loaded publisher or bridge) does not move a subscriber.
				c.rate = rate(prev, c, dt)
				if prev.rate > 0 {
					c.rate = (c.rate + prev.rate) / 2
				}
				if c.rate >= minLayerRate {
					rates[i] = c.rate
					if !up.dynPaused.Load() { // not a paused layer's last packets
						up.lastRate.Store(uint64(c.rate))
					}
				} else if up.dynPaused.Load() && a.p.params.Relay {
					// Paused by dynacast: the bridge beyond learns what it would cost,
					// so that its need can bring it back (dynacast.go).
					rates[i] = float64(up.lastRate.Load())
				}
			}
			a.layers[up] = c
		}
		prio := 0
		switch g := d.up.gateNow(); {
		case d.pinned.Load() || (g != nil && g.pinned.Load()):
			prio = 2 // the chair, the floor holder, a site the subscriber pinned: their picture first
		case g != nil && g.dominant.Load():
			prio = 1 // then the one speaking
		}
		a.streams = append(a.streams, bwe.Stream{Rates: rates, Priority: prio})
	}
	for up := range a.layers { // layers that ended
		if !seen[up] {
			delete(a.layers, up)
		}
	}
}

// capStream applies the subscription's cap (its subscriber's, and on a relay link the
// need reported from beyond) to its layers' rates: the layers above it are out of the
// allocation, though the lowest present stays when none is under it. It reports false,
// and stops the subscription, when the cap is none. Allocator goroutine.
func (a *allocator) capStream(d *DownTrack, rates []float64, now time.Time) bool {
	c := d.capAt(now)
	a.stopped(d, c < 0)
	if c < 0 {
		return false
	}
	lowest := -1
	for i, r := range rates {
		if r > 0 && (lowest < 0 || i <= int(c)) {
			lowest = i
		}
	}
	for i := range rates {
		if i != lowest && i > int(c) {
			rates[i] = 0
		}
	}
	return true
}

// stopped holds d back while nobody beyond needs it (on), or lets it go on, counting
// the pauses. Allocator goroutine.
func (a *allocator) stopped(d *DownTrack, on bool) {
	if !d.hold(on) || !on {
		return
	}
	if m := a.metrics(); m != nil && m.LayerPauses != nil {
		m.LayerPauses.WithLabelValues(a.link).Inc()
	}
	d.sub.log.Debug("stream stopped: not needed beyond", "track", d.id)
}

// sendRates tells the bridge beyond this relay link the rates of each layered source's
// layers (CAUR), so that it can say which it needs. Allocator goroutine.
func (a *allocator) sendRates(sims []*DownTrack) {
	var pkts []rtcp.Packet
	flush := func() {
		if err := a.p.sub.WriteRTCP(pkts); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			a.p.log.Debug("send layer rates", "err", err)
		}
		pkts = pkts[:0]
	}
	for i, d := range sims {
		if b := d.binding.Load(); b != nil {
			pkts = append(pkts, ratesPacket(b.ssrc, a.streams[i].Rates))
		}
		if len(pkts) == 32 { // a compound packet well under the MTU
			flush()
		}
	}
	if len(pkts) > 0 {
		flush()
	}
}

// chosen is the layer the allocator last chose for the subscription (-1: none yet, or
// stopped).
func (d *DownTrack) chosen() int {
	if d.sim != nil {
		if d.sim.off.Load() {
			return -1
		}
		_, target := d.Layer()
		return target
	}
	return int(d.want.Load())
}

// stepDown is choose for a step down on a link that overruns: a simulcast subscription
// stops forwarding its layer at once (setLayer's cut); a relayed one records its want.
func (d *DownTrack) stepDown(l int) {
	if d.sim != nil {
		d.setLayer(l, true)
		return
	}
	d.want.Store(int32(l))
}

// choose applies the allocator's choice: a simulcast subscription switches to the layer;
// a relayed layered one records it as its want, capped by the need from beyond (need.go).
func (d *DownTrack) choose(l int) {
	if d.sim != nil {
		d.SetLayer(l)
		return
	}
	d.want.Store(int32(l))
}

// probeDone folds a finished probe into the estimate; it says whether one still runs.
func (a *allocator) probeDone(now time.Time) bool {
	pr := a.probe
	if pr == nil {
		return false
	}
	if !pr.done.Load() {
		return true
	}
	a.probe = nil
	rate, loss := pr.result()
	ok := a.est.Probed(now, rate, pr.target, loss)
	result := "failed"
	if ok {
		result = "ok"
		a.probes[0].Add(1)
	} else {
		a.probes[1].Add(1)
	}
	if m := a.metrics(); m != nil && m.LinkProbes != nil {
		m.LinkProbes.WithLabelValues(a.link, result).Inc()
	}
	a.p.log.Debug("probe", "link", a.link, "target", int(pr.target), "rate", int(rate), "loss",
		math.Round(loss*1000)/1000, "queued", pr.queued, "result", result)
	return false
}

// noSwap is allocator.swapAbove when no subscription is raised.
const noSwap = math.MinInt

// swapSlack is how far a swap's total may exceed what the link carries and still count as
// not growing: two sources' layers of one size, measured, differ by a few per cent.
const swapSlack = 0.1

// swaps says whether the choice takes subscription i down from layer cur this tick: to
// make room for one of higher priority that it raises (a pin, the floor moving), not
// because the estimate fell short (a lagging estimate does not take a layer away).
func (a *allocator) swaps(i, cur int) bool {
	return a.choice[i] < cur && a.streams[i].Priority < a.swapAbove
}

// probeFirst decides about this tick's step up: it says whether the raises chosen must
// wait (a probe of the rate they need runs, or may not start yet), and starts a probe
// when one is due: of the chosen raises if the link has not carried their total yet, else,
// when the estimate asks for no raise while a subscription is below its top, of the next
// step up (the estimate's own back-off after loss may outlast the trouble: a probe finds
// a link that recovered within seconds). A raise that comes with a step down of a lower
// priority (a swap) whose total does not grow needs no probe: the link carries that
// total now. A link that cannot carry padding (no RTX negotiated) steps up without
// probing, as before.
func (a *allocator) probeFirst(now time.Time, sims []allocSub, keep []int, others float64, probing bool) bool {
	a.cur = a.cur[:0]
	a.swapAbove = noSwap
	for i, d := range sims {
		c := d.chosen()
		switch {
		case c < 0:
			c = keep[i] // resuming this tick
		case a.est.Congested():
			c = min(c, keep[i]) // going down this tick
		}
		a.cur = append(a.cur, c)
		if a.choice[i] > c && !a.est.Congested() {
			a.swapAbove = max(a.swapAbove, a.streams[i].Priority)
		}
	}
	have, need, swap := others, others, false
	for i, c := range a.cur {
		have += layerRate(a.streams[i], c)
		next := max(c, a.choice[i])
		if a.swaps(i, c) {
			next, swap = a.choice[i], true
		}
		need += layerRate(a.streams[i], next)
	}
	target := need
	switch {
	case need <= have && !swap:
		target = have + bwe.StepUp(a.streams, a.cur)
		if target <= have {
			return false // at the top
		}
	case need <= a.est.Proven:
		return false // the link has carried this rate: up now
	case swap && need <= have*(1+swapSlack):
		return false // a swap: the total does not grow
	}
	// Probe with the raises' own headroom: a link that carries the step with nothing to
	// spare (a shaper's queue absorbing the rest for a while) would fail it minutes later.
	probeAt := target / raiseHeadroom
	if probing || !a.est.Probe(now, have, probeAt) {
		return need > have
	}
	if a.probe = a.startProbe(probeAt, have, now); a.probe == nil {
		return false // nothing to probe with: step up as before
	}
	a.est.Probing()
	return need > have
}

// layerRate is a stream's rate at layer l, 0 if it has none.
func layerRate(s bwe.Stream, l int) float64 {
	if l < 0 || l >= len(s.Rates) {
		return 0
	}
	return s.Rates[l]
}

// Probes counts the bandwidth probes of the peer's subscriber link, by result.
func (p *Peer) Probes() (ok, failed uint64) {
	p.mu.Lock()
	a := p.alloc
	p.mu.Unlock()
	if a == nil {
		return 0, 0
	}
	return a.probes[0].Load(), a.probes[1].Load()
}

// rate is the bit rate on the wire between two counter samples dt seconds apart.
func rate(prev, cur counterSample, dt float64) float64 {
	if dt <= 0 {
		return 0
	}
	return float64((cur.bytes-prev.bytes)+(cur.packets-prev.packets)*rtpOverhead) * 8 / dt
}

// Estimate is the bandwidth estimate (bit/s) of the peer's subscriber link, and whether
// there is one (the peer has had a simulcast subscription).
func (p *Peer) Estimate() (float64, bool) {
	p.mu.Lock()
	a := p.alloc
	p.mu.Unlock()
	if a == nil {
		return 0, false
	}
	return float64(a.estimate.Load()), true
}
