package client

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// PublishOptions shape the synthetic media PublishWith sends.
type PublishOptions struct {
	// FPS, PacketsPerFrame and PayloadBytes shape the video (see Synth); zero keeps the
	// Synth's defaults.
	FPS, PacketsPerFrame, PayloadBytes int
	// NoAudio and NoVideo leave a track silent (see Synth).
	NoAudio, NoVideo bool
	// AudioEvery is the audio packet interval (see Synth); 0 means 20 ms.
	AudioEvery time.Duration
	// Levels sends audio levels (see Synth.Levels); the Synth's SetLoudness sets them.
	Levels bool
	// Simulcast sends the video as three layers, q, h and f (see Synth.Simulcast), as the
	// join page does; the bridge forwards each subscriber the one its link fits.
	Simulcast bool
	// H264 sends the simulcast layers in H.264 rather than VP8 (NewSimulcastH264Synth),
	// as a browser does in a meeting with a room codec.
	H264 bool
}

// SynthCounts are what a Synth has sent so far.
type SynthCounts struct {
	AudioPackets, VideoPackets, VideoFrames int64
}

type synthCounters struct {
	audioPackets, videoPackets, videoFrames atomic.Int64
}

// Sent returns the packets and frames the Synth has written so far.
func (s *Synth) Sent() SynthCounts {
	return SynthCounts{AudioPackets: s.sent.audioPackets.Load(), VideoPackets: s.sent.videoPackets.Load(),
		VideoFrames: s.sent.videoFrames.Load()}
}

// publication is media started by PublishWith: its source and the channel that stops it.
type publication struct {
	synth *Synth
	stop  chan struct{}
}

// ErrAlreadyPublishing is returned by PublishWith while an earlier publication is live.
var ErrAlreadyPublishing = errors.New("already publishing; unpublish first")

// publicationSeq makes each publication's stream id unique, so a later publication is
// never confused with an earlier one's inactive transceivers.
var publicationSeq atomic.Uint64

// PublishWith starts synthetic media shaped by o, negotiates it, and returns the Synth so
// the caller can read what it sent. Unpublish stops it; a client has one such publication
// at a time. The media is published again after a reconnect, as with Publish.
func (c *Client) PublishWith(ctx context.Context, o PublishOptions) (*Synth, error) {
	c.mu.Lock()
	busy := c.publication != nil
	c.mu.Unlock()
	if busy {
		return nil, fmt.Errorf("publish: %w", ErrAlreadyPublishing)
	}
	newSynth := NewSynth
	if o.Simulcast {
		newSynth = NewSimulcastSynth
		if o.H264 {
			newSynth = NewSimulcastH264Synth
		}
	}
	synth, err := newSynth(fmt.Sprintf("%s-cam%d", c.Self.ID, publicationSeq.Add(1)))
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if o.FPS > 0 {
		synth.FPS = o.FPS
	}
	if o.PacketsPerFrame > 0 {
		synth.PacketsPerFrame = min(o.PacketsPerFrame, 255)
	}
	synth.PayloadBytes = o.PayloadBytes
	synth.NoAudio, synth.NoVideo, synth.Levels, synth.AudioEvery = o.NoAudio, o.NoVideo, o.Levels, o.AudioEvery
	if err := c.negotiatePublisher(ctx, synth); err != nil {
		return nil, err
	}
	p := &publication{synth: synth, stop: make(chan struct{})}
	c.mu.Lock()
	c.synth = synth
	c.publication = p
	c.mu.Unlock()
	runStop := make(chan struct{})
	go func() {
		select {
		case <-p.stop:
		case <-c.stop:
		}
		close(runStop)
	}()
	go synth.Run(runStop)
	return synth, nil
}

// Unpublish stops the media PublishWith started, removes its tracks and renegotiates, so
// the bridge ends them for every subscriber. It is a no-op when nothing is published.
func (c *Client) Unpublish(ctx context.Context) error {
	c.mu.Lock()
	p := c.publication
	c.publication = nil
	if p != nil && c.synth == p.synth {
		c.synth = nil
	}
	c.mu.Unlock()
	if p == nil {
		return nil
	}
	close(p.stop)
	pub, _ := c.peers()
	for _, s := range pub.GetSenders() {
		if tr := s.Track(); tr != nil && (tr == webrtc.TrackLocal(p.synth.Audio) || tr == webrtc.TrackLocal(p.synth.Video) ||
			p.synth.isLayer(tr)) {
			if err := pub.RemoveTrack(s); err != nil {
				return fmt.Errorf("unpublish: %w", err)
			}
		}
	}
	if err := c.offerPublisher(ctx, pub, nil); err != nil {
		return fmt.Errorf("unpublish: %w", err)
	}
	return nil
}
