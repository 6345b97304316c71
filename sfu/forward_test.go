package sfu

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

func TestTwoPeersExchangeMedia(t *testing.T) { testPeersExchangeMedia(t, 2) }

func TestFivePeersExchangeMedia(t *testing.T) {
	if testing.Short() {
		t.Skip("five peers: skipped in -short mode (testing.Short)")
	}
	testPeersExchangeMedia(t, 5)
}

func testPeersExchangeMedia(t *testing.T, n int) {
	b := newTestBridge(t)
	before := idleBaseline(b)
	r := &room{}
	var eps []*testEndpoint
	for i := 0; i < n; i++ {
		e := r.join(t, b, fmt.Sprintf("e%d", i))
		e.publish()
		eps = append(eps, e)
	}
	eventually(t, 15*time.Second, func() string {
		for _, rx := range eps {
			for _, tx := range eps {
				if rx == tx {
					continue
				}
				for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
					g := rx.got("stream-"+tx.name, kind)
					if g == nil || g.packets.Load() < 20 {
						return fmt.Sprintf("%s has not received 20 %s packets from %s", rx.name, kind, tx.name)
					}
				}
			}
		}
		return ""
	})
	for _, rx := range eps {
		for _, tx := range eps {
			if rx == tx {
				continue
			}
			a := rx.got("stream-"+tx.name, webrtc.RTPCodecTypeAudio)
			v := rx.got("stream-"+tx.name, webrtc.RTPCodecTypeVideo)
			if !strings.EqualFold(a.mime, webrtc.MimeTypeOpus) || !strings.EqualFold(v.mime, webrtc.MimeTypeVP8) {
				t.Errorf("%s from %s: codecs %s/%s, want opus/VP8", rx.name, tx.name, a.mime, v.mime)
			}
			if v.firstIsKeyframe.Load() != 1 {
				t.Errorf("%s from %s: first video packet was not a keyframe start", rx.name, tx.name)
			}
			if rx.got("stream-"+rx.name, webrtc.RTPCodecTypeVideo) != nil {
				t.Errorf("%s received its own video back", rx.name)
			}
		}
	}
	// The bridge encrypted what they received (own SRTP, ownsrtp.go), not pion's session.
	for _, e := range eps {
		if e.peer.own == nil || e.peer.own.dest.Load() == nil {
			t.Errorf("%s: subscriber connection's RTP not encrypted by the bridge (own SRTP)", e.name)
		}
	}
	// Subscribers send receiver reports (once a second): the bridge reads RTT and loss.
	eventually(t, 5*time.Second, func() string {
		for _, e := range eps {
			for _, d := range e.peer.DownTracks() {
				if q := d.Quality(); q.Reports == 0 || q.RTT <= 0 || q.FractionLost > 0.05 {
					return fmt.Sprintf("%s: down track %s quality %+v", e.name, d.ID(), q)
				}
			}
		}
		return ""
	})
	for _, e := range eps {
		e.close()
	}
	before.check(t, b, func() {
		for _, e := range eps {
			e.drop()
		}
		r.drop()
	})
}

// watching starts a bridge with an endpoint "pub" publishing audio and video in mime,
// joins one called sub, and waits for n of pub's video packets to reach it.
func watching(t *testing.T, mime, sub string, n int64) (*Bridge, *room, *testEndpoint, *testEndpoint) {
	t.Helper()
	b := newTestBridge(t)
	r := &room{}
	pub := r.join(t, b, "pub")
	pub.publishVideo(mime)
	s := r.join(t, b, sub)
	s.waitPackets(t, 10*time.Second, "stream-pub", webrtc.RTPCodecTypeVideo, n, sub+" has no "+mime+" from pub yet")
	return b, r, pub, s
}

// TestLateJoinerStartsWithKeyframe joins a subscriber long after the publisher's last
// keyframe: it must get a fresh one (PLI) first, not delta frames.
func TestLateJoinerStartsWithKeyframe(t *testing.T) {
	b, r, pub, _ := watching(t, webrtc.MimeTypeVP8, "early", 30)
	// The synthetic publisher sends keyframes only when asked, so the late joiner sees
	// video only if the bridge requests one for it.
	plis := pub.plisReceived.Load()
	late := r.join(t, b, "late")
	late.waitPackets(t, 10*time.Second, "stream-pub", webrtc.RTPCodecTypeVideo, 10, "late subscriber has no video yet")
	if g := late.got("stream-pub", webrtc.RTPCodecTypeVideo); g.firstIsKeyframe.Load() != 1 {
		t.Fatal("late subscriber's first video packet is not a keyframe start")
	}
	if pub.plisReceived.Load() <= plis {
		t.Fatal("the publisher received no keyframe request for the late joiner")
	}
}

// TestLeaverDisappears closes one endpoint: the others stop receiving its tracks.
func TestLeaverDisappears(t *testing.T) {
	b := newTestBridge(t)
	r := &room{}
	a := r.join(t, b, "a")
	a.publish()
	c := r.join(t, b, "c")
	c.publish()
	c.waitPackets(t, 10*time.Second, "stream-a", webrtc.RTPCodecTypeAudio, 10, "c has no audio from a")
	a.close()
	eventually(t, 5*time.Second, func() string {
		if n := len(c.peer.DownTracks()); n != 0 {
			return fmt.Sprintf("c still has %d down tracks", n)
		}
		return ""
	})
}

// TestKeyframeRequestsCoalesce sends a burst of keyframe requests: the publisher gets one
// at once and one more at the end of the interval, not one per request and not none.
func TestKeyframeRequestsCoalesce(t *testing.T) {
	_, _, pub, _ := watching(t, webrtc.MimeTypeVP8, "sub", 20)
	var up *UpTrack
	for _, u := range pub.peer.UpTracks() {
		if u.Kind() == webrtc.RTPCodecTypeVideo {
			up = u
		}
	}
	time.Sleep(keyframeInterval + 100*time.Millisecond) // a fresh interval
	before := pub.plisReceived.Load()
	for i := 0; i < 20; i++ {
		up.RequestKeyframe()
		time.Sleep(10 * time.Millisecond)
	}
	eventually(t, 2*time.Second, func() string {
		if got := pub.plisReceived.Load() - before; got != 2 {
			return fmt.Sprintf("%d PLIs for a burst of 20 requests in 200 ms, want 2 (one now, one deferred)", got)
		}
		return ""
	})
	time.Sleep(keyframeInterval + 100*time.Millisecond)
	if got := pub.plisReceived.Load() - before; got != 2 {
		t.Fatalf("%d PLIs in the end, want 2", got)
	}
}

// TestH264IsForwarded publishes H.264: the subscriber receives it as H.264 and starts at
// an IDR picture, requested for it.
func TestH264IsForwarded(t *testing.T) {
	b, r, _, early := watching(t, webrtc.MimeTypeH264, "early", 20)
	late := r.join(t, b, "late")
	late.waitPackets(t, 10*time.Second, "stream-pub", webrtc.RTPCodecTypeVideo, 10, "late subscriber has no H.264 video yet")
	for _, e := range []*testEndpoint{early, late} {
		g := e.got("stream-pub", webrtc.RTPCodecTypeVideo)
		if !strings.EqualFold(g.mime, webrtc.MimeTypeH264) {
			t.Errorf("%s receives %s, want H264", e.name, g.mime)
		}
		if g.firstIsKeyframe.Load() != 1 {
			t.Errorf("%s: first H.264 packet is not the start of an IDR picture", e.name)
		}
	}
}

// TestH264OnlyEndpoint: an endpoint that offers only H.264 (Safari, hardware codecs)
// publishes to the bridge and a browser-like endpoint receives its video as H.264; it
// receives another H.264 publisher, starting at an IDR picture. A VP8 publisher it
// cannot decode (the bridge forwards, never transcodes) is left out of its subscriber
// connection without breaking the rest of it.
func TestH264OnlyEndpoint(t *testing.T) {
	b := newTestBridge(t)
	r := &room{}
	h264Only.Store(true)
	safari := r.join(t, b, "safari")
	h264Only.Store(false)
	safari.publishVideo(webrtc.MimeTypeH264)
	chrome := r.join(t, b, "chrome")
	chrome.publishVideo(webrtc.MimeTypeH264)
	vp8 := r.join(t, b, "vp8")
	vp8.publish()
	eventually(t, 15*time.Second, func() string {
		if g := chrome.got("stream-safari", webrtc.RTPCodecTypeVideo); g == nil || g.packets.Load() < 20 {
			return "chrome has no video from the H.264-only endpoint"
		}
		if g := safari.got("stream-chrome", webrtc.RTPCodecTypeVideo); g == nil || g.packets.Load() < 20 {
			return "the H.264-only endpoint has no H.264 video from chrome"
		}
		if g := safari.got("stream-vp8", webrtc.RTPCodecTypeAudio); g == nil || g.packets.Load() < 20 {
			return "the H.264-only endpoint has no audio from the VP8 publisher"
		}
		return ""
	})
	for _, c := range []struct {
		rx   *testEndpoint
		from string
	}{{chrome, "stream-safari"}, {safari, "stream-chrome"}} {
		g := c.rx.got(c.from, webrtc.RTPCodecTypeVideo)
		if !strings.EqualFold(g.mime, webrtc.MimeTypeH264) || g.firstIsKeyframe.Load() != 1 {
			t.Errorf("%s from %s: %s, first packet keyframe=%d; want H264 starting at an IDR", c.rx.name, c.from, g.mime, g.firstIsKeyframe.Load())
		}
	}
	if g := safari.got("stream-vp8", webrtc.RTPCodecTypeVideo); g != nil && g.packets.Load() > 0 {
		t.Errorf("the H.264-only endpoint received VP8 video (%s)", g.mime)
	}
}

// TestICETCP connects endpoints that cannot use UDP: media flows over ICE-TCP.
func TestICETCP(t *testing.T) {
	b, err := New(Config{ICEUDPPort: 0, ICETCPPort: 0, IncludeLoopback: true, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	tcpOnly.Store(true)
	defer tcpOnly.Store(false)
	r := &room{}
	pub := r.join(t, b, "pub")
	pub.publish()
	sub := r.join(t, b, "sub")
	sub.waitPackets(t, 15*time.Second, "stream-pub", webrtc.RTPCodecTypeVideo, 20, "no video over ICE-TCP")
	pair, err := sub.sub.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Local.Protocol != webrtc.ICEProtocolTCP {
		t.Fatalf("selected pair %v (%v), want TCP", pair, err)
	}
	// Own SRTP sends on the UDP mux only: over TCP the connection stayed pion's.
	if o := sub.peer.own; o == nil || o.dest.Load() != nil || !o.deciding.Load() {
		t.Errorf("ICE-TCP subscriber: own SRTP %+v, want decided for pion", o)
	}
}
