package client

import (
	"fmt"

	"github.com/pion/rtcp"

	"github.com/cau-project/cau/protocol"
)

// Speaker is the meeting's dominant speaker and Last-N set as the server last told them,
// and how many times it did; a zero Speaker before the first.
func (c *Client) Speaker() (protocol.Speaker, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.speaker, c.speakerN
}

func (c *Client) setSpeaker(env protocol.Envelope) {
	var s protocol.Speaker
	if protocol.DecodeData(env, &s) != nil {
		return
	}
	c.mu.Lock()
	c.speaker = s
	c.speakerN++
	c.mu.Unlock()
}

// Pin pins a site (on) or unpins it: for the whole meeting if this client is the chair,
// else on its own link. The server answers with a speaker message naming the pins.
func (c *Client) Pin(site string, on bool) error {
	if err := c.send(protocol.KindPin, "", protocol.Pin{Site: site, On: on}); err != nil {
		return fmt.Errorf("pin %s: %w", site, err)
	}
	return nil
}

// RequestKeyframe asks for a keyframe of the received stream with this SSRC (RTCP PLI on
// the subscriber connection), as a browser's decoder does when it cannot go on.
func (c *Client) RequestKeyframe(ssrc uint32) error {
	_, sub := c.peers()
	if err := sub.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
		return fmt.Errorf("keyframe request: %w", err)
	}
	return nil
}
