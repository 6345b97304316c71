package client

import (
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// Timeline is when the subscriber connection passed each step towards media, the first
// time it did (zero for a step not reached yet). The load tester splits a join's token →
// media time with it: where a join storm's seconds go (issue 11).
type Timeline struct {
	Offer        time.Time // the first subscriber offer arrived
	Answer       time.Time // its answer was made (before SetLocalDescription starts ICE)
	ICEConnected time.Time // ICE found a working pair
	Connected    time.Time // DTLS done: SRTP can flow
}

// timeline records the steps; each field is written once, by whichever goroutine sees
// the step first (atomics: the read goroutine, answer's and pion's callbacks).
type timeline struct {
	offer, answer, ice, connected atomic.Int64 // Unix nanoseconds
}

func mark(t *atomic.Int64) { t.CompareAndSwap(0, time.Now().UnixNano()) }

func at(t *atomic.Int64) time.Time {
	if n := t.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// watchSubscriber marks the subscriber connection's ICE and DTLS steps.
func (t *timeline) watchSubscriber(sub *webrtc.PeerConnection) {
	sub.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		if s == webrtc.ICEConnectionStateConnected || s == webrtc.ICEConnectionStateCompleted {
			mark(&t.ice)
		}
	})
	sub.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			mark(&t.ice) // pion reports the two from different goroutines: keep them in order
			mark(&t.connected)
		}
	})
}

// Timeline is when the subscriber connection reached each step towards media (the first
// connection's: a reconnect does not restart it).
func (c *Client) Timeline() Timeline {
	t := &c.timeline
	return Timeline{Offer: at(&t.offer), Answer: at(&t.answer), ICEConnected: at(&t.ice), Connected: at(&t.connected)}
}
