package client

import (
	"strings"

	"github.com/pion/rtp"

	"github.com/cau-project/cau/protocol"
)

// Slots is the slot map the server last sent (protocol.KindSlots) by slot stream id, and
// how many maps it sent; nil and 0 before the first (or without Options.Slots). A slot's
// received track is Stream(streamID, kind): its packets are those of whichever
// participant the map names for it.
func (c *Client) Slots() (map[string]protocol.SlotSource, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.slots == nil {
		return nil, c.slotsN
	}
	out := make(map[string]protocol.SlotSource, len(c.slots))
	for k, v := range c.slots {
		out[k] = v
	}
	return out, c.slotsN
}

// Offers counts the subscriber offers the server sent (each a renegotiation of what the
// endpoint receives).
func (c *Client) Offers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offers
}

func (c *Client) setSlots(env protocol.Envelope) {
	var s protocol.Slots
	if protocol.DecodeData(env, &s) != nil {
		return
	}
	m := make(map[string]protocol.SlotSource, len(s.Slots))
	for _, x := range s.Slots {
		m[x.Stream] = x
	}
	c.mu.Lock()
	c.slots = m
	c.slotsN++
	c.mu.Unlock()
}

// ReceiveSections counts the m-sections of the subscriber connection's negotiated
// session: the tracks the endpoint can receive (an answer may carry at most
// protocol.MaxAnswerMedia).
func (c *Client) ReceiveSections() int {
	_, sub := c.peers()
	d := sub.CurrentRemoteDescription()
	if d == nil {
		return 0
	}
	return strings.Count(d.SDP, "\nm=")
}

// observeSlot counts a packet received on a slot also on the Stream of the participant
// the slot map names for it now (keyed, like a track of its own, by the participant's
// camera stream id), so that Stream(participant's stream, kind) tells what the endpoint
// receives of each participant whether it receives in slots or not. Those Streams are
// not passed to Options.OnStream (their packets are the slots'). Reader goroutines; a
// packet that arrives just before the map naming its new participant counts for the
// previous one.
func (c *Client) observeSlot(slot *Stream, hdr *rtp.Header, payload []byte) {
	c.mu.Lock()
	src, ok := c.slots[slot.StreamID]
	p, known := c.participants[string(src.Participant)]
	stream := p.Streams[protocol.SourceCamera]
	if !ok || !known || stream == "" {
		c.mu.Unlock()
		return
	}
	key := stream + "/" + slot.Kind
	v := c.streams[key]
	if v == nil {
		v = newStream(stream, slot.TrackID, slot.Kind, slot.MimeType, slot.ClockRate)
		c.streams[key] = v
	}
	c.mu.Unlock()
	v.Packets.Add(1)
	v.Bytes.Add(int64(len(payload)))
	v.observe(hdr, payload)
}
