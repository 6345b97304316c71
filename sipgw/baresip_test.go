package sipgw_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/rtpvideo"
	"github.com/cau-project/cau/internal/testapp"
	"github.com/cau-project/cau/internal/testmedia"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/sipgw"
)

// start runs Cầu in dev mode (ad hoc meetings) with the SIP gateway on a free port; the
// server's log is returned too.
func start(t *testing.T) (*app.App, *testutil.LockedBuffer) {
	t.Helper()
	return startWith(t, app.SIPConfig{Addr: "127.0.0.1:0", Site: "phong-hop"})
}

func startWith(t testing.TB, sip app.SIPConfig) (*app.App, *testutil.LockedBuffer) {
	t.Helper()
	return startConfig(t, app.Config{SIP: sip})
}

// startConfig runs Cầu with cfg in dev mode on free ports, logging to the buffer it
// returns (shown if the test fails).
func startConfig(t testing.TB, cfg app.Config) (*app.App, *testutil.LockedBuffer) {
	t.Helper()
	cfg.HTTPAddr, cfg.ICETCPPort, cfg.Dev = "127.0.0.1:0", -1, true
	return testapp.Start(t, cfg)
}

func token(t testing.TB, a *app.App, meeting, site, name string) string {
	t.Helper()
	tok, err := a.Keys().Sign(auth.Claims{Use: auth.UseJoin, Meeting: meeting, Site: site, Name: name,
		Role: auth.RoleParticipant}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// publishH264 joins a pion endpoint to meeting through WHIP and sends an H.264 test
// pattern with a 1 kHz beep, as a browser asked for H.264 would.
func publishH264(t testing.TB, a *app.App, meeting string) *testmedia.Publisher {
	t.Helper()
	pub := testmedia.NewPublisherOf(t, "pion-cam", 0, webrtc.MimeTypeH264)
	pub.PublishWHIP(t, a.URL(), meeting, token(t, a, meeting, "ha-noi", "Hà Nội"))
	clip := testmedia.MakeH264Clip(t, 320, 240)
	pub.Start(func(int) *testmedia.Clip { return clip })
	return pub
}

// TestBaresipDialsIn: a real SIP softphone (baresip, standing in for a room's codec)
// dials sip:<meeting>@gateway over UDP and over TCP. A pion subscriber in the meeting
// receives the room's H.264, starting with SPS and PPS and then an IDR, and its audio;
// baresip receives, and decodes, the H.264 and the audio of a pion publisher. Hanging
// up takes the room out of the meeting.
func TestBaresipDialsIn(t *testing.T) {
	needBaresip(t)
	testmedia.Need(t)
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) { dialIn(t, transport, false, "g711.so") })
	}
}

// TestBaresipDialsInSRTP: the same call with SRTP mandatory on both sides (the gateway's
// SRTPMandatory, baresip's srtp-mand media encryption: RTP/SAVP with SDES keys), video
// and audio both ways.
func TestBaresipDialsInSRTP(t *testing.T) {
	needBaresip(t)
	testmedia.Need(t)
	logs := dialIn(t, "udp", true, "g711.so")
	// The SDES keys crossed the network in clear SIP: the gateway says so, once.
	if n := strings.Count(logs.String(), "SDES keys over SIP without TLS"); n != 1 {
		t.Errorf("the gateway warned %d times about SDES keys in clear SIP, want once", n)
	}
}

// TestBaresipDialsInTLS: the same call over SIP over TLS (the gateway's certificate
// on its TLS port, baresip dialling ;transport=tls) with SRTP mandatory: the SDES keys
// travel encrypted, and no warning about them is logged.
func TestBaresipDialsInTLS(t *testing.T) {
	needBaresip(t)
	testmedia.Need(t)
	logs := dialIn(t, "tls", true, "g711.so")
	if strings.Contains(logs.String(), "SDES keys over SIP without TLS") {
		t.Errorf("the gateway warned about SDES keys in clear over TLS")
	}
}

// TestBaresipDialsInG722: a room that speaks G.722 only (baresip with its g722 module
// alone) is answered in G.722: the meeting hears its 16 kHz audio in Opus, and it hears
// the meeting's mix in G.722.
func TestBaresipDialsInG722(t *testing.T) {
	needBaresip(t)
	testmedia.Need(t)
	dialIn(t, "udp", false, "g722.so")
}

// dialIn is a call from baresip over transport (udp, tcp, tls), with SRTP mandatory or
// not, and audioCodec the one audio codec module baresip loads (g711.so, g722.so).
func dialIn(t *testing.T, transport string, srtp bool, audioCodec string) *testutil.LockedBuffer {
	const meeting = "giao-ban"
	codec := "pcmu"
	if audioCodec == "g722.so" {
		codec = "g722"
	}
	cfg, account, encryption := app.SIPConfig{Addr: "127.0.0.1:0", Site: "phong-hop"}, "", "none"
	if srtp {
		cfg.SRTP, account, encryption = sipgw.SRTPMandatory, ";mediaenc=srtp-mand", "srtp"
	}
	if transport == "tls" {
		cfg.TLS, cfg.TLSAddr = serverTLS(t), "127.0.0.1:0"
	}
	a, logs := startWith(t, cfg)
	publishH264(t, a, meeting)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ws := strings.Replace(a.URL(), "http://", "ws://", 1) + "/ws"
	// The viewer keeps the Opus it receives (10 s of each stream), to hear what it carries.
	var sound struct {
		sync.Mutex
		packets map[string][][]byte // by stream
	}
	sound.packets = map[string][][]byte{}
	viewer, err := client.Dial(ctx, ws, token(t, a, meeting, "hue", "Huế"), client.Options{Loopback: true,
		OnPacket: func(s *client.Stream, _ *rtp.Header, payload []byte) {
			if s.Kind != "audio" {
				return
			}
			sound.Lock()
			if len(sound.packets[s.StreamID]) < 500 {
				sound.packets[s.StreamID] = append(sound.packets[s.StreamID], slices.Clone(payload))
			}
			sound.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(viewer.Close)

	room := startBaresipAudio(t, "Phòng họp Đà Nẵng", "127.0.0.1:0", account, audioCodec)
	uri := a.SIP().URI(meeting)
	switch transport {
	case "tcp":
		uri += ";transport=tcp"
	case "tls":
		uri = a.SIP().TLSURI(meeting)
	}
	room.command("/dial " + uri)
	testutil.Eventually(t, 20*time.Second, func() string {
		if !room.established() {
			return "baresip's call is not established"
		}
		return ""
	})
	answered := time.Now()

	// The room in the meeting: a participant of the gateway's site, sending H.264.
	var camera string
	testutil.Eventually(t, 20*time.Second, func() string {
		for _, p := range viewer.Participants() {
			if p.Name == "Phòng họp Đà Nẵng" && p.Site == "phong-hop" && p.Role == string(auth.RoleRoom) {
				camera = p.Streams[protocol.SourceCamera]
			}
		}
		if camera == "" {
			return "the viewer has not seen the room join"
		}
		v, au := viewer.Stream(camera, "video"), viewer.Stream(camera, "audio")
		switch {
		case v == nil || v.Packets.Load() < 5:
			return "the viewer has not received the room's video"
		case !strings.EqualFold(v.MimeType, webrtc.MimeTypeH264):
			return "the room's video reaches the viewer as " + v.MimeType
		case v.NALTypes.Load()&(1<<rtpvideo.NALIDR) == 0:
			return "no IDR from the room yet"
		case au == nil || au.Packets.Load() < 25:
			return "the viewer has not received half a second of the room's audio"
		}
		return ""
	})
	if !strings.Contains(logs.String(), "transport="+strings.ToUpper(transport)) {
		t.Errorf("the gateway did not log a call over %s", transport)
	}
	v := viewer.Stream(camera, "video")
	nals := v.NALTypes.Load()
	if v.FirstKeyframe.Load() != 1 || nals&(1<<rtpvideo.NALSPS) == 0 || nals&(1<<rtpvideo.NALPPS) == 0 {
		t.Errorf("the room's video does not start with SPS and PPS: first keyframe %d, NAL types %b", v.FirstKeyframe.Load(), nals)
	}
	// A figure, not an assertion (the box is shared): answer to first IDR at the viewer.
	t.Logf("%s: call answered → the viewer has the room's IDR and audio %v later", transport, time.Since(answered))

	// The room decodes what the meeting sends it: pictures and sound.
	testutil.Eventually(t, 20*time.Second, func() string {
		if room.decodedFPS() <= 0 {
			return "baresip decodes no video"
		}
		return ""
	})
	room.command("/snapshot")
	testutil.Eventually(t, 10*time.Second, func() string {
		if room.receivedSnapshot() == "" {
			return "baresip saved no decoded picture"
		}
		// The clip's beep is 100 ms of every 2 s: over several seconds the decoded sound
		// has it (a G.711 silence peaks at a few units).
		if p := room.decodedAudioPeak(); p < 2000 {
			return "baresip's decoded audio peaks at " + itoa(p) + ", want the beep"
		}
		return ""
	})
	metrics := scrape(t, a)
	for _, want := range []string{
		`cau_sip_calls_total{outcome="answered"} 1`,
		`cau_sip_calls_active 1`,
		`cau_sip_call_codecs_total{codec="h264",kind="video"} 1`,
		`cau_sip_call_codecs_total{codec="` + codec + `",kind="audio"} 1`,
		`cau_sip_call_encryption_total{encryption="` + encryption + `"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The room's sound reaches the meeting: baresip's 440 Hz sine, not silence.
	sound.Lock()
	peak := sipgw.OpusPeak(sound.packets[camera])
	sound.Unlock()
	if peak < 2000 {
		t.Errorf("the room's audio decodes to a peak of %d at the viewer, want baresip's sine", peak)
	}
	// baresip's RTCP receiver reports on what it is sent (every few seconds).
	testutil.Eventually(t, 15*time.Second, func() string {
		m := scrape(t, a)
		for _, want := range []string{`cau_sip_room_jitter_seconds_count{kind="video"}`, `cau_sip_room_loss_ratio_count{kind="audio"}`} {
			if !strings.Contains(m, want) {
				return "no reception report from the room yet: " + want
			}
		}
		return ""
	})
	// The subscriber's keyframe requests reached the room (RTCP PLI: baresip offers it).
	if !strings.Contains(metrics, `cau_sip_keyframe_requests_total{direction="to_room"}`) {
		t.Errorf("no keyframe request was sent to the room")
	}

	room.command("/hangup")
	testutil.Eventually(t, 10*time.Second, func() string {
		for _, p := range viewer.Participants() {
			if p.Site == "phong-hop" {
				return "the room is still in the meeting after hanging up"
			}
		}
		if n := a.SIP().Calls(); n != 0 {
			return "the gateway still has " + itoa(n) + " calls"
		}
		return ""
	})
	return logs
}

func scrape(t testing.TB, a *app.App) string {
	t.Helper()
	resp, err := http.Get(a.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
