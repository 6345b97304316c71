package whip

import (
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
