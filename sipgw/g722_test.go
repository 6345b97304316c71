//go:build cgo

package sipgw

import (
	"math"
	"net/netip"
	"strings"
	"testing"
)

// goertzel is the share of x's energy at freq (Hz, sampled at rate).
func goertzel(x []int16, freq, rate float64) float64 {
	w := 2 * math.Pi * freq / rate
	var s1, s2, total float64
	for _, v := range x {
		s := float64(v) + 2*math.Cos(w)*s1 - s2
		s2, s1 = s1, s
		total += float64(v) * float64(v)
	}
	power := s1*s1 + s2*s2 - 2*math.Cos(w)*s1*s2
	return 2 * power / (float64(len(x)) * total)
}

// TestG722RoundTrip: tones through libspandsp's G.722 encoder and decoder come back at
// their frequency and level, up to 7 kHz (a 6 kHz tone, which G.711's 8 kHz sampling
// cannot carry at all), 160 bytes per 20 ms (64 kbit/s), with the encoder and decoder
// keeping their state across frames as a call does.
func TestG722RoundTrip(t *testing.T) {
	for _, freq := range []float64{440, 1000, 6000} {
		enc, err := newG722Encoder()
		if err != nil {
			t.Fatal(err)
		}
		dec, err := newG722Decoder()
		if err != nil {
			t.Fatal(err)
		}
		const frames = 50 // 1 s
		in := make([]int16, frames*maxFrame)
		for i := range in {
			in[i] = int16(8000 * math.Sin(2*math.Pi*freq*float64(i)/g722Rate))
		}
		out := make([]int16, 0, len(in))
		payload := make([]byte, maxFrame)
		pcm := make([]int16, maxFrame)
		for f := range frames {
			n := enc.encode(in[f*maxFrame:(f+1)*maxFrame], payload)
			if n != maxFrame/2 {
				t.Fatalf("%v Hz: a 20 ms frame encodes to %d bytes, want %d", freq, n, maxFrame/2)
			}
			k := dec.decode(payload[:n], pcm)
			if k != maxFrame {
				t.Fatalf("%v Hz: %d bytes decode to %d samples, want %d", freq, n, k, maxFrame)
			}
			out = append(out, pcm[:k]...)
		}
		enc.close()
		dec.close()
		settled := out[len(out)/2:] // the ADPCM has adapted
		var inE, outE float64
		for i, v := range settled {
			outE += float64(v) * float64(v)
			w := in[len(in)/2+i]
			inE += float64(w) * float64(w)
		}
		if r := outE / inE; r < 0.7 || r > 1.4 {
			t.Errorf("%v Hz: decoded energy is %.2f of the input's", freq, r)
		}
		if share := goertzel(settled, freq, g722Rate); share < 0.9 {
			t.Errorf("%v Hz: only %.2f of the decoded energy is at the tone's frequency", freq, share)
		}
	}
}

// TestG722Negotiation: an offer with G.711 first and G.722 later is answered in G.722
// (wideband wins), keeping G.711 as the call's narrowband choice; a call that runs at 8
// kHz takes that G.711 from a later offer, and one at 16 kHz refuses an offer without
// G.722.
func TestG722Negotiation(t *testing.T) {
	offer := "v=0\r\no=- 1 1 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\nt=0 0\r\n" +
		"m=audio 4000 RTP/AVP 0 8 9 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\n" +
		"a=rtpmap:101 telephone-event/8000\r\n"
	d, err := parseDescription([]byte(offer), false)
	if err != nil {
		t.Fatal(err)
	}
	if a := d.Audio; a.Codec != codecG722 || a.PT != ptG722 || a.NarrowCodec != codecPCMU || a.NarrowPT != ptPCMU {
		t.Fatalf("chose %s/%d (narrowband %s/%d), want g722/9 (pcmu/0)", a.Codec, a.PT, a.NarrowCodec, a.NarrowPT)
	}
	ans := string(buildAnswer(d, netip.MustParseAddr("127.0.0.1"), 1, 1, localMedia{RTP: 10, RTCP: 11}, localMedia{}))
	if !strings.Contains(ans, "m=audio 10 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n") {
		t.Errorf("the answer is not G.722:\n%s", ans)
	}
	if codecRate(codecG722) != 16000 || codecRate(codecPCMA) != 8000 {
		t.Errorf("rates: g722 %d, pcma %d", codecRate(codecG722), codecRate(codecPCMA))
	}
	narrow := &call{rate: g711Rate}
	if err := narrow.fitRate(d); err != nil || d.Audio.Codec != codecPCMU || d.Audio.PT != ptPCMU {
		t.Errorf("an 8 kHz call offered G.722 and PCMU: %v, %s/%d", err, d.Audio.Codec, d.Audio.PT)
	}
	g711only, err := parseDescription([]byte(strings.Replace(offer, " 0 8 9 101", " 0 8 101", 1)), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := (&call{rate: g722Rate}).fitRate(g711only); err == nil {
		t.Errorf("a 16 kHz call took an offer without G.722")
	}
	wide := string(buildOffer(netip.MustParseAddr("127.0.0.1"), 1, localMedia{RTP: 10}, localMedia{RTP: 12}, true))
	late := string(buildOffer(netip.MustParseAddr("127.0.0.1"), 1, localMedia{RTP: 10}, localMedia{RTP: 12}, false))
	if !strings.Contains(wide, "m=audio 10 RTP/AVP 9 0 8\r\n") || strings.Contains(late, "G722") {
		t.Errorf("offers: the dialled one must lead with G.722, the late one carry none:\n%s\n%s", wide, late)
	}
}
