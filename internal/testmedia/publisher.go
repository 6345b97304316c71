package testmedia

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/peerconn"
	"github.com/cau-project/cau/internal/testpeer"
	"github.com/cau-project/cau/internal/tick"
)

// Publisher is a pion endpoint that publishes a camera (VP8) and a microphone (Opus)
// from clips, in real time, like a browser: default codecs and interceptors (NACK
// responder, sender reports), answering keyframe requests only with the clip's own
// keyframes (once a second).
type Publisher struct {
	PC           *webrtc.PeerConnection
	Video, Audio *webrtc.TrackLocalStaticSample
	// PLIs counts keyframe requests received; Frames the video frames sent.
	PLIs, Frames atomic.Int64
	// Dropped counts RTP packets the simulated link lost (first sends and resends).
	Dropped atomic.Int64

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// NewPublisher creates the endpoint. loss (0..1) drops that share of its outgoing RTP
// packets between pion's NACK responder and the network: a lossy uplink that NACKs can
// repair.
func NewPublisher(t testing.TB, streamID string, loss float64) *Publisher {
	t.Helper()
	return NewPublisherOf(t, streamID, loss, webrtc.MimeTypeVP8)
}

// NewPublisherOf is NewPublisher with another video codec (webrtc.MimeTypeH264).
func NewPublisherOf(t testing.TB, streamID string, loss float64, videoMime string) *Publisher {
	t.Helper()
	p := &Publisher{}
	ir := &interceptor.Registry{}
	if loss > 0 {
		// Registered first, so it sits nearest the network: retransmissions pass it too.
		ir.Add(&lossFactory{rate: loss, dropped: &p.Dropped})
	}
	api := testpeer.API(t, nil, ir, testpeer.Loopback)
	pc, err := peerconn.New(api, webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p.PC = pc
	t.Cleanup(func() { p.Close() })
	if p.Video, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: videoMime}, "camera", streamID); err != nil {
		t.Fatal(err)
	}
	if p.Audio, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "mic", streamID); err != nil {
		t.Fatal(err)
	}
	for _, tr := range []webrtc.TrackLocal{p.Video, p.Audio} {
		sender, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		go client.ReadKeyframeRequests(sender.Sender(), func() { p.PLIs.Add(1) })
	}
	return p
}

// Offer creates the endpoint's offer, candidates included.
func (p *Publisher) Offer() (string, error) {
	offer, err := p.PC.CreateOffer(nil)
	if err != nil {
		return "", err
	}
	done := webrtc.GatheringCompletePromise(p.PC)
	if err := p.PC.SetLocalDescription(offer); err != nil {
		return "", err
	}
	<-done
	return p.PC.LocalDescription().SDP, nil
}

// Answer applies the bridge's answer.
func (p *Publisher) Answer(sdp string) error {
	return p.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp})
}

// Negotiate offers p's connection to whoever answer stands for (a bridge agent's Offer
// for the endpoint's peer, say) and applies the answer; the test fails on any error.
func (p *Publisher) Negotiate(t testing.TB, answer func(offer string) (string, error)) {
	t.Helper()
	offer, err := p.Offer()
	if err != nil {
		t.Fatal(err)
	}
	ans, err := answer(offer)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Answer(ans); err != nil {
		t.Fatal(err)
	}
}

// PublishWHIP joins the endpoint to meeting with one WHIP POST to baseURL (Cầu's HTTP
// server) bearing token, as OBS does, and applies the answer. It returns the resource's
// URL.
func (p *Publisher) PublishWHIP(t testing.TB, baseURL, meeting, token string) string {
	t.Helper()
	offer, err := p.Offer()
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, baseURL+"/whip/"+meeting, strings.NewReader(offer))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/sdp")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHIP POST: %d %s", resp.StatusCode, answer)
	}
	if err := p.Answer(string(answer)); err != nil {
		t.Fatal(err)
	}
	return baseURL + resp.Header.Get("Location")
}

// Start sends the clips in real time from now on: clip(n) gives the clip of cycle n
// (so a test can change the resolution). Video frame i and audio packet j leave at
// start + i/FPS and start + j×20 ms, so the flash and the beep leave together.
func (p *Publisher) Start(clip func(cycle int) *Clip) {
	ctx, cancel := context.WithCancel(context.Background())
	p.stop = cancel
	start := time.Now()
	frameDur := time.Second / FPS
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		perCycle := int(Cycle / frameDur)
		for i := 0; ; i++ {
			if !tick.Until(ctx, start.Add(time.Duration(i)*Cycle/time.Duration(perCycle))) {
				return
			}
			c := clip(i / perCycle)
			if err := p.Video.WriteSample(media.Sample{Data: c.Video[i%perCycle], Duration: frameDur}); err != nil {
				return
			}
			p.Frames.Add(1)
		}
	}()
	go func() {
		defer p.wg.Done()
		perCycle := int(Cycle / (20 * time.Millisecond))
		for j := 0; ; j++ {
			if !tick.Until(ctx, start.Add(time.Duration(j)*20*time.Millisecond)) {
				return
			}
			c := clip(j / perCycle)
			if err := p.Audio.WriteSample(media.Sample{Data: c.Audio[j%perCycle], Duration: 20 * time.Millisecond}); err != nil {
				return
			}
		}
	}()
}

// Close stops sending and closes the connection.
func (p *Publisher) Close() {
	if p.stop != nil {
		p.stop()
	}
	// Closing the connection first ends a WriteSample stuck behind a busy interceptor.
	_ = p.PC.Close()
	p.wg.Wait()
}

// lossFactory makes the lossy-link interceptor.
type lossFactory struct {
	rate    float64
	dropped *atomic.Int64
}

func (f *lossFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &lossInterceptor{rate: f.rate, dropped: f.dropped}, nil
}

type lossInterceptor struct {
	interceptor.NoOp
	rate    float64
	dropped *atomic.Int64
}

func (l *lossInterceptor) BindLocalStream(_ *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if rand.Float64() < l.rate {
			l.dropped.Add(1)
			return len(payload), nil
		}
		return w.Write(h, payload, a)
	})
}

// String names the publisher in failures.
func (p *Publisher) String() string { return fmt.Sprintf("publisher %s", p.Video.StreamID()) }
