package protocol

import (
	"encoding/json"
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

// A bridge's offer to a subscriber carries an m-section per stream it is sent: in a
// meeting of many publishers it is over a publisher offer's cap and must still be read.
func TestBridgeOfferIsBoundedAsAnAnswer(t *testing.T) {
	header := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
	section := "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
	env := func(sections int) Envelope {
		data, err := json.Marshal(Offer{SDP: header + strings.Repeat(section, sections)})
		if err != nil {
			t.Fatal(err)
		}
		return Envelope{V: Version, Kind: KindOffer, Data: data}
	}
	wide := env(MaxOfferMedia + 4)
	var o Offer
	if err := DecodeData(wide, &o); err == nil {
		t.Fatalf("a publisher offer of %d m-sections was accepted", MaxOfferMedia+4)
	}
	if _, err := DecodeBridgeOffer(wide); err != nil {
		t.Fatalf("bridge offer of %d m-sections refused: %v", MaxOfferMedia+4, err)
	}
	if _, err := DecodeBridgeOffer(env(MaxAnswerMedia + 1)); err == nil {
		t.Fatalf("a bridge offer of %d m-sections was accepted", MaxAnswerMedia+1)
	}
	if _, err := DecodeBridgeOffer(Envelope{Kind: KindOffer, Data: []byte(`{"sdp":`)}); err == nil {
		t.Fatal("a truncated bridge offer was accepted")
	}
}
