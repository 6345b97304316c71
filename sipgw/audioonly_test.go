package sipgw_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/sipgw"
)

// TestSIPAudioOnlyFallback: a room whose video the gateway cannot forward (VP8 only,
// H.263 only, H.264 in packetization mode 0 only) is answered with its audio and the
// video m-line refused (port 0); it joins the meeting audio-only, and the call's view
// (Gateway.CallInfos), the log and cau_sip_video_refused_total say why.
func TestSIPAudioOnlyFallback(t *testing.T) {
	a, logs := start(t)
	u := newRawUA(t, a.SIP().Addr().String())
	ruri := "sip:am-thanh@" + a.SIP().Addr().String()
	const session = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
	for i, c := range []struct{ name, audio, video, reason, audioCodec string }{
		{"vp8", "m=audio 40000 RTP/AVP 9 0\r\na=rtpmap:9 G722/8000\r\n", "m=video 40002 RTP/AVP 100\r\na=rtpmap:100 VP8/90000\r\n",
			"codec", "g722"},
		{"h263", "m=audio 40000 RTP/AVP 8\r\n", "m=video 40002 RTP/AVP 34\r\na=rtpmap:34 H263/90000\r\n", "codec", "pcma"},
		{"h264 mode 0", "m=audio 40000 RTP/AVP 0\r\n",
			"m=video 40002 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\na=fmtp:97 profile-level-id=42e01f\r\n", "h264_mode0", "pcmu"},
	} {
		t.Run(c.name, func(t *testing.T) {
			callID := fmt.Sprintf("audio-only-%d", i)
			u.send(u.request("INVITE", ruri, callID, 1, "", nil, session+c.audio+c.video))
			resp := u.final("INVITE")
			if status(resp) != "200 OK" {
				t.Fatalf("INVITE: %q", status(resp))
			}
			tag := toTag(resp)
			u.send(u.request("ACK", ruri, callID, 1, tag, nil, ""))
			if !strings.Contains(resp, "\r\nm=video 0 RTP/AVP 0\r\n") || strings.Contains(resp, "\r\nm=audio 0 ") {
				t.Errorf("want the audio answered and the video refused (port 0):\n%s", resp)
			}
			testutil.Eventually(t, 10*time.Second, func() string {
				if m := scrape(t, a); !strings.Contains(m, fmt.Sprintf(`cau_sip_calls_total{outcome="answered"} %d`, i+1)) {
					return "the call is not answered yet"
				}
				calls := a.SIP().CallInfos()
				if len(calls) != 1 {
					return fmt.Sprintf("%d calls", len(calls))
				}
				got := calls[0]
				want := sipgw.CallInfo{ID: callID, Meeting: "am-thanh", Name: "Test room", Transport: "UDP",
					AudioCodec: c.audioCodec, VideoCodec: "none", Encryption: "none", VideoRefused: c.reason,
					VideoRefusedText: got.VideoRefusedText}
				if got != want || got.VideoRefusedText == "" {
					return fmt.Sprintf("the call's view is %+v, want %+v with a text", got, want)
				}
				// The console's entry of the room says it too (an earlier subtest's room may
				// still be listed while it leaves).
				eps := sipEndpoints(a)
				for _, ep := range eps {
					if ep.SIP.VideoRefused == c.reason && ep.SIP.VideoCodec == "none" && ep.SIP.AudioCodec == c.audioCodec {
						return ""
					}
				}
				return fmt.Sprintf("the monitor's SIP endpoints %+v, want one refused for %q", eps, c.reason)
			})
			u.bye(a, ruri, callID, 2, tag)
		})
	}
	if !strings.Contains(logs.String(), "sip call is audio-only: its video was refused") {
		t.Errorf("the gateway did not log why the calls are audio-only")
	}
	m := scrape(t, a)
	for _, want := range []string{`cau_sip_video_refused_total{reason="codec"} 2`, `cau_sip_video_refused_total{reason="h264_mode0"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grep(m, "cau_sip_video_refused"))
		}
	}
}
