package client

import "github.com/cau-project/cau/protocol"

// setRecording applies a recording message (on the read goroutine).
func (c *Client) setRecording(env protocol.Envelope) {
	var r protocol.Recording
	if protocol.DecodeData(env, &r) != nil {
		return
	}
	c.mu.Lock()
	c.recording = r
	c.mu.Unlock()
}

// Recording is the meeting's recording state as the server last told it (inactive until
// told otherwise): what a page's "recording" indicator shows.
func (c *Client) Recording() protocol.Recording {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.recording
}
