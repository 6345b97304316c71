package whip

import (
	"errors"
	"strings"
	"testing"
)

// FuzzOfferChecks: the gateway's own looks into a client's SDP (what it sends, what ICE
// credentials it has) take any text without panicking, and say nothing they cannot see.
func FuzzOfferChecks(f *testing.F) {
	f.Add("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\na=ice-ufrag:x\r\na=ice-pwd:y\r\na=fingerprint:sha-256 00\r\n")
	f.Add("v=0\nm=audio 9 X 0\na=recvonly\nm=application 9 X\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, sdp string) {
		if sends(sdp) && !strings.Contains(sdp, "m=") {
			t.Fatal("sends media without a media section")
		}
		if missingICE(sdp) == "" && !strings.Contains(sdp, "a=fingerprint:") {
			t.Fatal("no fingerprint, and nothing missing")
		}
		if m := missingICE(sdp); m != "" && m != "ice-ufrag" && m != "ice-pwd" && m != "fingerprint" {
			t.Fatalf("missingICE = %q", m)
		}
	})
}

// FuzzTrickleFragment: a PATCH body of any text is parsed or refused with errFragment,
// never a panic; what it accepts is bounded and every candidate it keeps validates and
// names its media section.
func FuzzTrickleFragment(f *testing.F) {
	f.Add("a=ice-ufrag:ab\r\na=ice-pwd:cd\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n" +
		"a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n")
	f.Add("a=candidate:1 1 udp 1 1.2.3.4 9 typ host\n")
	f.Add("m=video 9 X 96\nm=audio 9 X 0\na=mid:1\na=candidate:x 1 tcp 1 ::1 9 typ host tcptype passive\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, body string) {
		fr, err := parseFragment(body)
		if err != nil {
			if !errors.Is(err, errFragment) {
				t.Fatalf("error %v is not errFragment", err)
			}
			return
		}
		if len(fr.candidates) > maxFragmentCandidates {
			t.Fatalf("%d candidates kept", len(fr.candidates))
		}
		for _, c := range fr.candidates {
			if c.SDPMid == nil && c.SDPMLineIndex == nil {
				t.Fatalf("candidate %q without a media section", c.Candidate)
			}
			if !strings.HasPrefix(c.Candidate, "candidate:") {
				t.Fatalf("candidate %q", c.Candidate)
			}
		}
	})
}
