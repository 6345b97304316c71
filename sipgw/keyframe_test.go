package sipgw_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/internal/attachrtc"
	"github.com/cau-project/cau/internal/rtpvideo"
	"github.com/cau-project/cau/internal/testmedia"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/signaling"
)

// kfViewer is a WebRTC subscriber in the meeting, a pion connection attached to
// signaling as a browser's page would be, that can ask for a keyframe as a browser's
// decoder does after loss, and notes when each keyframe (a packet with an SPS) arrives.
type kfViewer struct {
	pc *webrtc.PeerConnection

	mu   sync.Mutex
	ssrc uint32
	idrs []time.Time
}

// subscribe joins meeting as a kfViewer of site hue.
func subscribe(t *testing.T, a *app.App, meeting string) *kfViewer {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	// No mDNS: nobody here resolves .local names, and each peer connection would open
	// multicast sockets and a reader goroutine for it (leaked past Close on a loaded box).
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir),
		webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	v := &kfViewer{pc: pc}
	pc.OnTrack(func(tr *webrtc.TrackRemote, rcv *webrtc.RTPReceiver) {
		go func() { // the receiver's RTCP, for the interceptors
			for {
				if _, _, err := rcv.ReadRTCP(); err != nil {
					return
				}
			}
		}()
		video := tr.Kind() == webrtc.RTPCodecTypeVideo
		if video {
			v.mu.Lock()
			v.ssrc = uint32(tr.SSRC())
			v.mu.Unlock()
		}
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if video && rtpvideo.H264NALTypes(pkt.Payload)&(1<<rtpvideo.NALSPS) != 0 {
				v.mu.Lock()
				v.idrs = append(v.idrs, time.Now())
				v.mu.Unlock()
			}
		}
	})
	events := make(chan protocol.Envelope, 64)
	ep := a.Signaling().Attach(signaling.AttachOptions{Remote: "test-subscriber", OnEvent: func(env protocol.Envelope) {
		select {
		case events <- env:
		default:
			t.Error("the subscriber's event queue is full")
		}
	}})
	t.Cleanup(ep.Close)
	go func() {
		for {
			select {
			case env := <-events:
				if _, err := attachrtc.HandleMedia(env, ep, pc, nil); err != nil {
					t.Errorf("answering the bridge: %v", err)
				}
			case <-ep.Done():
				return
			}
		}
	}()
	env, err := ep.Request(t.Context(), protocol.KindJoin, protocol.Join{Token: token(t, a, meeting, "hue", "Huế")})
	if err != nil || env.Kind == protocol.KindError {
		t.Fatalf("join: %v %s", err, env.Data)
	}
	return v
}

// keyframes counts the keyframes received, and says when the last came.
func (v *kfViewer) keyframes() (int, time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.idrs) == 0 {
		return 0, time.Time{}
	}
	return len(v.idrs), v.idrs[len(v.idrs)-1]
}

// askKeyframe sends the bridge a PLI for the camera, as a browser's decoder does.
func (v *kfViewer) askKeyframe(t *testing.T) {
	t.Helper()
	v.mu.Lock()
	ssrc := v.ssrc
	v.mu.Unlock()
	if err := v.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
		t.Fatal(err)
	}
}

// TestSubscriberKeyframeReachesRoom: a WebRTC subscriber of the room's camera asks for a
// keyframe; the request reaches the room (RTCP PLI where its SDP offered nack pli, else
// SIP INFO picture_fast_update, RFC 5168) and the room's IDR reaches the subscriber. The
// room sends an IDR only when asked (as a codec with a very long GOP), so the IDR that
// follows is the request's answer; the time from request to IDR is logged (the issue
// asks for under 1 s).
func TestSubscriberKeyframeReachesRoom(t *testing.T) {
	testmedia.Need(t)
	clip := testmedia.MakeH264Clip(t, 320, 240)
	for _, c := range []struct {
		name     string
		feedback bool
	}{{"rtcp", true}, {"info", false}} {
		t.Run(c.name, func(t *testing.T) {
			meeting := "khung-hinh-" + c.name
			a, _ := start(t)
			room := dialRTPRoomWith(t, a.SIP().Addr(), meeting, "Phòng họp", c.feedback)
			if !c.feedback {
				stop := room.serveINFO()
				t.Cleanup(stop) // before the room's own cleanup: registered later, runs first
			}
			room.sendOnRequest(clip)
			v := subscribe(t, a, meeting)
			testutil.Eventually(t, 20*time.Second, func() string {
				if n, _ := v.keyframes(); n == 0 {
					return "the subscriber has no keyframe of the room yet"
				}
				return ""
			})
			// Let the requests of the subscription's start settle: no keyframe for 1.5 s.
			testutil.Eventually(t, 20*time.Second, func() string {
				if _, last := v.keyframes(); time.Since(last) < 1500*time.Millisecond {
					return "keyframes still arriving"
				}
				return ""
			})
			before, _ := v.keyframes()
			asks := room.asks.Load()
			asked := time.Now()
			v.askKeyframe(t)
			var took time.Duration
			testutil.Eventually(t, 10*time.Second, func() string {
				n, last := v.keyframes()
				if n <= before {
					return fmt.Sprintf("no keyframe after the request (the room was asked %d times)", room.asks.Load()-asks)
				}
				took = last.Sub(asked)
				return ""
			})
			if room.asks.Load() <= asks {
				t.Errorf("the keyframe came without the room being asked")
			}
			t.Logf("%s: subscriber's PLI → the room's IDR at the subscriber: %v", c.name, took)
		})
	}
}
