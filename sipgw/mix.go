package sipgw

import (
	"math"
	"slices"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/sfu/speaker"
)

// The room hears one G.711 or G.722 stream: the sum of the voices the bridge sends the call. The
// bridge forwards an endpoint the audio of the loudest few sources (Last-N, sfu/lastn.go)
// and never its own, so the sum is a mix-minus of the active speakers: the room never
// hears itself back, however many rooms and browsers speak.
//
// Each meeting audio track's reader decodes its Opus to the call's rate (8 kHz for
// G.711, 16 kHz for G.722) and queues 20 ms frames
// in its mixInput; the mix loop takes one frame of each every 20 ms, sums them, sends
// the sum, and feeds each frame's loudness to a speaker.Selector, whose dominant speaker
// the room's video follows in discussion mode (follow.go).

// mixDepth is how many frames an input queues (160 ms): beyond it the oldest is dropped,
// so a burst after a stall does not become lasting delay.
const mixDepth = 8

// mixPrime is how many frames an input gathers before it is mixed (and again after it
// ran dry): 40 ms of jitter absorbed.
const mixPrime = 2

// mixBehind bounds the frames the mix loop catches up at once after a stall.
const mixBehind = 5

// mixInput is one meeting voice on its way into the mix. mu guards the queue; level and
// heard are the mix loop's.
type mixInput struct {
	id speaker.ID // the track's stream: the participant's

	mu     sync.Mutex
	ring   [mixDepth][maxFrame]int16
	head   int // index of the oldest frame
	n      int // frames queued
	primed bool

	level float64 // loudness of the frame last mixed (127 − level in −dBov)
	heard bool    // a frame was mixed this tick
}

// push queues one frame, dropping the oldest when full.
func (in *mixInput) push(pcm []int16) {
	in.mu.Lock()
	if in.n == mixDepth {
		in.head = (in.head + 1) % mixDepth
		in.n--
	}
	copy(in.ring[(in.head+in.n)%mixDepth][:], pcm)
	in.n++
	in.mu.Unlock()
}

// pop adds the oldest frame (its first n samples) into sum and reports whether there
// was one to mix.
func (in *mixInput) pop(sum *[maxFrame]int32, n int) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.primed && in.n >= mixPrime {
		in.primed = true
	}
	if !in.primed || in.n == 0 {
		in.primed = false
		in.level, in.heard = 0, false
		return false
	}
	f := &in.ring[in.head]
	in.head = (in.head + 1) % mixDepth
	in.n--
	var energy float64
	for i, s := range f[:n] {
		sum[i] += int32(s)
		energy += float64(s) * float64(s)
	}
	in.level, in.heard = loudness(energy/float64(n)), true
	return true
}

// loudness maps a frame's mean square to speaker's scale: 127 + its level in dBov
// (full scale 0 dBov), 0 for digital silence.
func loudness(meanSquare float64) float64 {
	if meanSquare < 1 {
		return 0
	}
	dBov := 10 * math.Log10(meanSquare/(32768*32768))
	return max(0, 127+dBov)
}

// mixer holds a call's inputs and elects their dominant speaker. mu guards inputs and
// sel; the mix loop is its only reader. frame is the samples of 20 ms at the call's
// rate, set (setRate) before any input is added.
type mixer struct {
	mu     sync.Mutex
	inputs []*mixInput
	sel    *speaker.Selector
	frame  int
}

func newMixer() *mixer {
	return &mixer{sel: speaker.New(speaker.Params{}), frame: frame8k}
}

func (m *mixer) add(id string) *mixInput {
	in := &mixInput{id: speaker.ID(id)}
	m.mu.Lock()
	m.inputs = append(m.inputs, in)
	m.sel.Add(in.id)
	m.mu.Unlock()
	return in
}

func (m *mixer) remove(in *mixInput) {
	m.mu.Lock()
	if i := slices.Index(m.inputs, in); i >= 0 {
		m.inputs = slices.Delete(m.inputs, i, i+1)
	}
	if !slices.ContainsFunc(m.inputs, func(o *mixInput) bool { return o.id == in.id }) {
		m.sel.Remove(in.id)
	}
	m.mu.Unlock()
}

// mixFrame sums one frame of every input into sum (zeroed first) and returns the
// dominant speaker after this frame's levels.
func (m *mixer) mixFrame(now time.Time, sum *[maxFrame]int32, level func(speaker.ID) (float64, bool)) speaker.ID {
	*sum = [maxFrame]int32{}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, in := range m.inputs {
		in.pop(sum, m.frame)
	}
	m.sel.Update(now, level)
	return m.sel.Dominant()
}

// levelOf is the loudness of id's frame this tick. Caller holds m.mu (inside mixFrame).
func (m *mixer) levelOf(id speaker.ID) (float64, bool) {
	for _, in := range m.inputs {
		if in.id == id {
			return in.level, in.heard
		}
	}
	return 0, false
}

// mixLoop sends the room a frame every 20 ms, from its start to its end: the sum of the
// meeting's voices, or silence (a room codec hangs up on a call whose RTP stops). It
// paces itself by the clock, not by ticks, so a late tick is caught up.
func (c *call) mixLoop() {
	// start precedes the ticker's start, so the k-th tick (at start + k×20 ms or later)
	// finds frame k due: frames go out at their time, not a tick behind it.
	start, sent := time.Now(), 0
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var sum [maxFrame]int32
	var pcm [maxFrame]int16
	var hdr rtp.Header
	out := make([]byte, 12+maxFrame)
	n := c.mix.frame
	var wide *g722Encoder // the room's G.722 encoder, made with its first frame
	defer func() {
		if wide != nil {
			wide.close()
		}
	}()
	level := c.mix.levelOf // one closure for the call's life
	dominant := speaker.ID("")
	late, frames, lateness := c.g.m.MixUnderruns.WithLabelValues("late"), c.g.m.MixFrames, c.g.m.MixLateness
	for {
		var now time.Time
		select {
		case <-c.done:
			return
		case now = <-tick.C:
		}
		due := int(now.Sub(start)/(20*time.Millisecond)) - sent
		if due > mixBehind {
			c.g.m.MixUnderruns.WithLabelValues("missing").Add(float64(due - mixBehind))
			sent += due - mixBehind
			due = mixBehind
		}
		wall := time.Now() // the tick may have waited in its channel: lateness is now's
		for ; due > 0; due-- {
			sent++
			behind := wall.Sub(start) - time.Duration(sent)*20*time.Millisecond
			lateness.Observe(max(behind, 0).Seconds())
			if behind > 20*time.Millisecond {
				late.Inc() // more than a frame behind its time: the room's buffer ran short
			}
			d := c.mix.mixFrame(now, &sum, level)
			if d != dominant {
				dominant = d
				c.setDominant(string(d))
			}
			m := c.roomAudio.Load()
			if m == nil || !m.RemoteRecvs || codecRate(m.Codec) != c.rate { // no audio, or on hold
				continue
			}
			for i, s := range sum[:n] {
				pcm[i] = int16(max(math.MinInt16, min(math.MaxInt16, s)))
			}
			c.audioOut.next(&hdr, c.audioSSRC, m.PT)
			h, err := hdr.MarshalTo(out)
			if err != nil {
				continue
			}
			k := n
			if m.Codec == codecG722 {
				if wide == nil {
					if wide, err = newG722Encoder(); err != nil {
						continue
					}
				}
				k = wide.encode(pcm[:n], out[h:])
			} else {
				g711Encode(m.Codec, pcm[:n], out[h:h+n])
			}
			if c.audio.send(out[:h+k]) == nil {
				c.packets.toRoomAudio.Inc()
				c.audioStats.sent(hdr.Timestamp, frame8k)
				frames.Inc()
			}
		}
	}
}

// forwardAudio decodes t's Opus into 20 ms frames of the mix until t ends.
func (c *call) forwardAudio(t *webrtc.TrackRemote) {
	buf := make([]byte, mtu)
	if !forwardable(t) {
		drain(t, buf)
		return
	}
	dec, err := newOpusDecoder(c.rate)
	if err != nil {
		c.log.Warn("sip call: the meeting's audio is not sent to the room", "err", err)
		drain(t, buf)
		return
	}
	defer dec.close()
	in := c.mix.add(t.StreamID())
	defer c.mix.remove(in)
	frame, longest := c.rate/50, 120*c.rate/1000 // 20 ms, and the longest Opus packet (120 ms)
	pcm := make([]int16, 0, 2*longest)
	var pkt rtp.Packet
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:n]) != nil || len(pkt.Payload) == 0 {
			continue
		}
		start := len(pcm)
		k, err := dec.decode(pkt.Payload, pcm[start:start+longest])
		if err != nil {
			continue
		}
		pcm = pcm[:start+k]
		for len(pcm) >= frame {
			in.push(pcm[:frame])
			pcm = pcm[:copy(pcm, pcm[frame:])]
		}
	}
}
