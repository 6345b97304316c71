package sipgw

import (
	"math"
	"testing"

	"github.com/pion/rtp"
)

// TestG711RoundTrip: both laws keep a sample within their quantisation step (about 1/16
// of its magnitude, and a few units near zero), and keep its sign.
func TestG711RoundTrip(t *testing.T) {
	for _, codec := range []string{codecPCMU, codecPCMA} {
		pcm := make([]int16, 0, 1<<16)
		for v := math.MinInt16; v <= math.MaxInt16; v += 7 {
			pcm = append(pcm, int16(v))
		}
		enc := make([]byte, len(pcm))
		dec := make([]int16, len(pcm))
		g711Encode(codec, pcm, enc)
		g711Decode(codec, enc, dec)
		for i, v := range pcm {
			got := dec[i]
			tol := max(int(math.Abs(float64(v)))/14, 40)
			if d := int(got) - int(v); d > tol || d < -tol || (v > 200 && got < 0) || (v < -200 && got > 0) {
				t.Fatalf("%s: %d → %#x → %d", codec, v, enc[i], got)
			}
		}
	}
}

// TestRewriterContinuesAcrossSwitch: the room sees one RTP stream whatever source the
// gateway forwards: sequence numbers continue by one at a switch, timestamps move on,
// and the SSRC and payload type are the call's.
func TestRewriterContinuesAcrossSwitch(t *testing.T) {
	var r rewriter
	var got []rtp.Header
	send := func(src uint32, seq uint16, ts uint32) {
		h := rtp.Header{SSRC: src, SequenceNumber: seq, Timestamp: ts, PayloadType: 102, Extension: true,
			Extensions: []rtp.Extension{{}}}
		r.rewrite(&h, 77, 97, 3000)
		got = append(got, h)
	}
	send(1, 65534, 1000)
	send(1, 65535, 4000)
	send(1, 0, 7000)
	send(2, 500, 90) // a switch
	send(2, 501, 3090)
	send(1, 1, 10000) // back to the first
	for i := 1; i < len(got); i++ {
		if got[i].SequenceNumber != got[i-1].SequenceNumber+1 {
			t.Errorf("packet %d: seq %d after %d", i, got[i].SequenceNumber, got[i-1].SequenceNumber)
		}
		if int32(got[i].Timestamp-got[i-1].Timestamp) <= 0 {
			t.Errorf("packet %d: timestamp %d after %d", i, got[i].Timestamp, got[i-1].Timestamp)
		}
	}
	for i, h := range got {
		if h.SSRC != 77 || h.PayloadType != 97 || h.Extension || len(h.Extensions) != 0 {
			t.Errorf("packet %d: %+v", i, h)
		}
	}
}

// BenchmarkAudioTranscode is the audio cost of one call for 20 ms each way: the room's
// G.711 to Opus, and the meeting's Opus back to G.711 (ns/op ÷ 20 ms = the share of a
// core one call's audio takes).
func BenchmarkAudioTranscode(b *testing.B) {
	enc, err := newOpusEncoder(g711Rate)
	if err != nil {
		b.Skip(err)
	}
	defer enc.close()
	dec, err := newOpusDecoder(g711Rate)
	if err != nil {
		b.Fatal(err)
	}
	defer dec.close()
	room := make([]byte, frame8k)
	pcm := make([]int16, maxOpus8k)
	for i := range frame8k {
		pcm[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(i)/g711Rate))
	}
	g711Encode(codecPCMU, pcm[:frame8k], room)
	opus := make([]byte, mtu)
	out := make([]byte, frame8k)
	b.ReportAllocs()
	for b.Loop() {
		g711Decode(codecPCMU, room, pcm[:frame8k])
		n, err := enc.encode(pcm[:frame8k], opus)
		if err != nil {
			b.Fatal(err)
		}
		k, err := dec.decode(opus[:n], pcm)
		if err != nil || k != frame8k {
			b.Fatalf("decoded %d samples: %v", k, err)
		}
		g711Encode(codecPCMU, pcm[:frame8k], out)
	}
}
