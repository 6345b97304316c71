package client

import (
	"strings"

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
