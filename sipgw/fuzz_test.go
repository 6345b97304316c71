package sipgw

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

const baresipOffer = "v=0\r\no=- 1 1 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\nt=0 0\r\n" +
	"m=audio 39510 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n" +
	"a=sendrecv\r\na=rtcp-rsize\r\na=ptime:20\r\n" +
	"m=video 36814 RTP/AVP 96 97 34\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=0;profile-level-id=42e01f\r\n" +
	"a=rtpmap:97 H264/90000\r\na=fmtp:97 packetization-mode=1;profile-level-id=42e01f\r\na=rtpmap:34 H263/90000\r\n" +
	"a=sendrecv\r\na=rtcp-fb:* nack pli\r\n"

const srtpOffer = "v=0\r\no=- 1 1 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\nt=0 0\r\n" +
	"m=audio 39510 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n" +
	"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4\r\n" +
	"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20\r\n" +
	"m=video 36814 RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n" +
	"a=crypto:7 AEAD_AES_256_GCM inline:3bHpafkEfUmDSxsrmd2ePFBiApV7wOcY1sXDeSxtz4PTH9UKsqsAJ1RtoAI=\r\n"

// FuzzSDP: any body is read without panicking; what parses is answered with one m-line
// per offered one, nothing from the offer but the chosen codec's payload type is echoed
// into the answer's structure, and the chosen codecs are ones the gateway carries.
func FuzzSDP(f *testing.F) {
	f.Add(baresipOffer)
	f.Add("v=0\r\nc=IN IP6 ::1\r\nm=video 5 RTP/AVPF 1\r\na=rtpmap:1 H264/90000\r\na=fmtp:1 packetization-mode=1\r\na=rtcp-mux\r\n")
	f.Add("v=0\r\nm=video banana\r\n")
	f.Add(srtpOffer)
	f.Add(strings.Replace(baresipOffer, "RTP/AVP 0 8 101", "RTP/AVP 0 9 101\r\na=rtpmap:9 G722/8000", 1))
	f.Add(strings.Replace(srtpOffer, "inline:", "inline:AAAA", 1))
	f.Add("")
	f.Fuzz(func(t *testing.T, body string) {
		d, err := parseDescription([]byte(body), len(body)%2 == 1)
		if err != nil {
			if !errors.Is(err, errBadSDP) && !errors.Is(err, errNoCommonCode) && !errors.Is(err, errSRTPRequired) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if _, ok := videoRefusedText[d.VideoRefused]; d.VideoRefused != "" && !ok || d.VideoRefused != "" && d.Video != nil {
			t.Fatalf("video refused as %q (video %v)", d.VideoRefused, d.Video)
		}
		for _, m := range []*media{d.Audio, d.Video} {
			if m != nil && m.Codec != codecPCMU && m.Codec != codecPCMA && m.Codec != codecG722 && m.Codec != codecH264 {
				t.Fatalf("chose codec %q", m.Codec)
			}
		}
		la, lv := localMedia{RTP: 10, RTCP: 11}, localMedia{RTP: 12, RTCP: 13}
		if d.Audio != nil {
			la.Key = d.Audio.Key
		}
		if d.Video != nil {
			lv.Key = d.Video.Key
		}
		ans := string(buildAnswer(d, netip.MustParseAddr("127.0.0.1"), 1, 1, la, lv))
		if n := strings.Count(ans, "\r\nm="); n != len(d.Media) {
			t.Fatalf("answer has %d m-lines for %d offered:\n%s", n, len(d.Media), ans)
		}
		if _, err := parseDescription([]byte(ans), false); err != nil {
			t.Fatalf("the answer does not parse: %v\n%s", err, ans)
		}
	})
}

// FuzzInvite: any datagram the SIP parser accepts goes through the INVITE checks without
// panicking, and a refusal always carries a 4xx status.
func FuzzInvite(f *testing.F) {
	f.Add("INVITE sip:giao-ban@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n" +
		"From: <sip:room@127.0.0.1>;tag=1\r\nTo: <sip:giao-ban@127.0.0.1>\r\nCall-ID: 1\r\nCSeq: 1 INVITE\r\n" +
		"Contact: <sip:room@127.0.0.1:5062>\r\nContent-Type: application/sdp\r\nContent-Length: " +
		strconv.Itoa(len(baresipOffer)) + "\r\n\r\n" + baresipOffer)
	f.Add("INVITE sip:x@y SIP/2.0\r\nContent-Length: 0\r\n\r\n")
	f.Add("OPTIONS sip:a SIP/2.0\r\n\r\n")
	f.Add("INVITE sips:x@y:5061;transport=TCP SIP/2.0\r\nContent-Length: 0\r\n\r\n")
	f.Add("INVITE sip:x@y;transport=sctp SIP/2.0\r\nContent-Length: 0\r\n\r\n")
	parser := sip.NewParser()
	f.Fuzz(func(t *testing.T, raw string) {
		msg, err := parser.ParseSIP([]byte(raw))
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		// The Request-URI read as a room's URI to dial: TLS for sips:, never an
		// unknown transport.
		if tr, ok := uriTransport(req.Recipient); ok && tr != "udp" && tr != "tcp" && tr != "tls" ||
			ok && strings.EqualFold(req.Recipient.Scheme, "sips") && tr != "tls" {
			t.Fatalf("dial transport %q for %s", tr, req.Recipient.String())
		}
		meeting, _, err := checkInvite(req, len(raw)%2 == 1)
		var se *sipError
		switch {
		case err == nil && !meetingID.MatchString(meeting):
			t.Fatalf("accepted meeting %q", meeting)
		case err != nil && (!errors.As(err, &se) || se.status < 400 || se.status >= 500):
			t.Fatalf("refusal %v is not a 4xx", err)
		}
	})
}
