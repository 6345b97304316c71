package testmedia

import (
	"context"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/internal/tick"
)

// Feed sends clip in real time on RTP tracks that an endpoint already publishes (the
// tracks of package client's Synth, started with NoAudio and NoVideo): VP8 frames at FPS
// and 20 ms Opus packets, packetized as a browser sends them, so that a test can drive
// real, decodable media through signaling and the bridge. It returns a function that
// stops sending and waits for the senders.
func Feed(video, audio *webrtc.TrackLocalStaticRTP, clip *Clip) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	start := time.Now()
	send := func(tr *webrtc.TrackLocalStaticRTP, pay rtp.Payloader, rate uint32, every time.Duration, frames [][]byte) {
		defer wg.Done()
		p := rtp.NewPacketizer(1200, 0, 0, pay, rtp.NewRandomSequencer(), rate)
		ticks := uint32(every.Seconds() * float64(rate))
		for i := 0; ; i++ {
			if !tick.Until(ctx, start.Add(time.Duration(i)*every)) {
				return
			}
			for _, pkt := range p.Packetize(frames[i%len(frames)], ticks) {
				if err := tr.WriteRTP(pkt); err != nil {
					return
				}
			}
		}
	}
	wg.Add(2)
	go send(video, &codecs.VP8Payloader{EnablePictureID: true}, 90000, Cycle/time.Duration(len(clip.Video)), clip.Video)
	go send(audio, &codecs.OpusPayloader{}, 48000, 20*time.Millisecond, clip.Audio)
	return func() {
		cancel()
		wg.Wait()
	}
}
