package protocol

import (
	"strings"
	"testing"
)

const twoTracks = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=msid:s a1\r\na=ssrc:1 msid:s a1\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=ssrc:2 msid:s v1\r\n"

func TestParseSDPReadsMsidAndSsrcLines(t *testing.T) {
	got, err := ParseSDP(twoTracks, MaxOfferMedia)
	if err != nil {
		t.Fatal(err)
	}
	want := []SDPTrack{{"a1", "audio"}, {"v1", "video"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("tracks %v, want %v", got, want)
	}
}

func TestParseSDPRefusesHostileDescriptions(t *testing.T) {
	many := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" + strings.Repeat("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", MaxOfferMedia+1)
	for name, sdp := range map[string]string{
		"angle brackets": "v=0\r\n" + strings.Repeat("<", 48<<10-5),
		"too many media": many,
		"too long":       "v=0\r\n" + strings.Repeat("a=x\r\n", 12<<10),
		"empty":          "",
	} {
		if _, err := ParseSDP(sdp, MaxOfferMedia); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseSDP(f *testing.F) {
	f.Add(twoTracks)
	f.Add("v=0\r\n<<<<")
	f.Fuzz(func(t *testing.T, s string) {
		tracks, err := ParseSDP(s, MaxOfferMedia)
		if err == nil && len(tracks) > 2*maxSDPLines {
			t.Fatalf("%d tracks from %d lines", len(tracks), strings.Count(s, "\n"))
		}
	})
}
