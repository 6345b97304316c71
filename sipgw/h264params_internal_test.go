package sipgw

import (
	"fmt"
	"strings"
	"testing"
)

// TestH264Params reads room offers' H.264 parameters and picks the layer each decodes
// of the browsers' 180p/360p/720p ladder, and the profile-level-id answered.
func TestH264Params(t *testing.T) {
	for _, c := range []struct {
		name      string
		fmtp, bw  string // the video m-line's fmtp and b= lines
		sessBW    string // the session's b= line
		frame     int    // macroblocks
		rate      int    // bit/s
		layer     int
		answerPLI string
	}{
		{name: "level 3.1, nothing else", fmtp: "packetization-mode=1;profile-level-id=42e01f",
			frame: 3600, rate: 14_000_000, layer: 2, answerPLI: "42e01f"},
		{name: "no profile-level-id: 3.1 assumed", fmtp: "packetization-mode=1",
			frame: 3600, rate: 14_000_000, layer: 2, answerPLI: "42e01f"},
		{name: "level 1.3 (CIF)", fmtp: "profile-level-id=42e00d;packetization-mode=1",
			frame: 396, rate: 768_000, layer: 0, answerPLI: "42e00d"},
		{name: "level 2.2 with max-fs of 720p (Polycom)", fmtp: "profile-level-id=428016;max-fs=3600;max-mbps=108000;packetization-mode=1",
			frame: 3600, rate: 4_000_000, layer: 2, answerPLI: "42e016"},
		{name: "level 3.1, max-fs 396", fmtp: "packetization-mode=1;profile-level-id=42e01f;max-fs=396",
			frame: 396, rate: 14_000_000, layer: 0, answerPLI: "42e01f"},
		{name: "level 3.0: 360p fits, 720p does not", fmtp: "packetization-mode=1;profile-level-id=42e01e",
			frame: 1620, rate: 10_000_000, layer: 1, answerPLI: "42e01e"},
		{name: "max-mbps holds 720p at 30 fps back", fmtp: "packetization-mode=1;profile-level-id=42e01f;max-mbps=40500",
			frame: 3600, rate: 14_000_000, layer: 1, answerPLI: "42e01f"},
		{name: "b=AS:256 leaves the low layer", fmtp: "packetization-mode=1;profile-level-id=42e01f", bw: "b=AS:256",
			frame: 3600, rate: 256_000, layer: 0, answerPLI: "42e01f"},
		{name: "b=TIAS 600 kbit/s: the middle layer", fmtp: "packetization-mode=1;profile-level-id=42e01f", bw: "b=TIAS:600000",
			frame: 3600, rate: 600_000, layer: 1, answerPLI: "42e01f"},
		{name: "the session's b=AS when the m-line has none", fmtp: "packetization-mode=1;profile-level-id=42e01f",
			sessBW: "b=AS:384", frame: 3600, rate: 384_000, layer: 0, answerPLI: "42e01f"},
		{name: "max-br in kbit/s", fmtp: "packetization-mode=1;profile-level-id=42e01f;max-br=512",
			frame: 3600, rate: 512_000, layer: 1, answerPLI: "42e01f"},
		{name: "High 4.0: its profile echoed at level 3.1", fmtp: "packetization-mode=1;profile-level-id=640028",
			frame: 8192, rate: 20_000_000, layer: 2, answerPLI: "64001f"},
		{name: "level 1b (Baseline: level_idc 11 and constraint_set3)", fmtp: "packetization-mode=1;profile-level-id=42f00b",
			frame: 99, rate: 128_000, layer: 0, answerPLI: "42f00b"},
		{name: "garbage parameters ignored", fmtp: "packetization-mode=1;profile-level-id=zz;max-fs=-4;max-mbps=1e9;max-br=x",
			frame: 3600, rate: 14_000_000, layer: 2, answerPLI: "42e01f"},
		{name: "an unknown level: 3.1's limits", fmtp: "packetization-mode=1;profile-level-id=42e063",
			frame: 3600, rate: 14_000_000, layer: 2, answerPLI: "42e01f"},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
			if c.sessBW != "" {
				body += c.sessBW + "\r\n"
			}
			body += "t=0 0\r\nm=video 4000 RTP/AVP 97\r\n"
			if c.bw != "" {
				body += c.bw + "\r\n"
			}
			body += "a=rtpmap:97 H264/90000\r\na=fmtp:97 " + c.fmtp + "\r\n"
			d, err := parseDescription([]byte(body), false)
			if err != nil || d.Video == nil {
				t.Fatalf("parse: %v", err)
			}
			h := d.Video.H264
			if got := h.frameLimit(); got != c.frame {
				t.Errorf("frame limit %d macroblocks, want %d", got, c.frame)
			}
			if got := h.bitrateLimit(); got != c.rate {
				t.Errorf("bit rate limit %d, want %d", got, c.rate)
			}
			if got := layerFor(h, cameraLayers); got != c.layer {
				t.Errorf("layer %d, want %d", got, c.layer)
			}
			if got := h.answerProfileLevelID(); got != c.answerPLI {
				t.Errorf("answered profile-level-id %s, want %s", got, c.answerPLI)
			}
			answer := string(buildAnswer(d, d.Video.Addr.Addr(), 1, 1, localMedia{}, localMedia{RTP: 5000, RTCP: 5001}))
			if want := fmt.Sprintf("a=fmtp:97 packetization-mode=1;profile-level-id=%s\r\n", c.answerPLI); !strings.Contains(answer, want) {
				t.Errorf("answer lacks %q:\n%s", want, answer)
			}
		})
	}
}

// TestLayerForNothingFits: a room that decodes less than the low layer still gets it.
func TestLayerForNothingFits(t *testing.T) {
	if got := layerFor(h264Caps{Level: 10}, cameraLayers); got != 0 {
		t.Errorf("level 1 (QCIF): layer %d, want 0", got)
	}
}
