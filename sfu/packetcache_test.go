package sfu

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

func TestPacketCacheKeepsTheLatest(t *testing.T) {
	c := newPacketCache(100) // rounded up to 128
	for seq := uint16(65500); seq != 200; seq++ {
		c.store(seq, uint32(seq)*10, seq%3 == 0, []byte{byte(seq), byte(seq >> 8)})
	}
	buf := make([]byte, 10)
	if _, _, _, ok := c.get(65500, buf); ok {
		t.Fatal("packet 65500 still cached after 236 newer ones in 128 slots")
	}
	n, ts, marker, ok := c.get(150, buf)
	if !ok || n != 2 || buf[0] != 150 || ts != 1500 || marker != (150%3 == 0) {
		t.Fatalf("get(150) = %d %d %v %v %x", n, ts, marker, ok, buf[:n])
	}
	if _, _, _, ok := c.get(150, buf[:1]); ok {
		t.Fatal("a payload larger than dst was returned")
	}
	if _, _, _, ok := c.get(201, buf); ok {
		t.Fatal("a packet never stored was found")
	}
}

// nackTrack is an up track with one started subscriber whose writes are recorded.
func nackTrack(t *testing.T, rtx bool) (*UpTrack, *DownTrack, *sinkWriter) {
	t.Helper()
	up, raw := benchUpTrack(1)
	up.cache = newPacketCache(packetCacheSize)
	d := (*up.downs.Load())[0]
	w := &sinkWriter{}
	b := *d.binding.Load()
	b.writer = w
	if rtx {
		b.rtxSSRC, b.rtxPT = 7777, 97
	}
	d.binding.Store(&b)
	var hdr rtp.Header
	var pending pendingCounts
	for i := 0; i < 20; i++ {
		raw[2], raw[3] = byte((i+100)>>8), byte(i+100) // publisher's sequence 100..119
		binary.BigEndian.PutUint32(raw[4:8], uint32(i*3000))
		up.forward(raw, &hdr, &pending)
	}
	if len(w.headers) != 20 {
		t.Fatalf("%d packets forwarded, want 20", len(w.headers))
	}
	return up, d, w
}

// sinkWriter records headers and payloads written to a subscriber.
type sinkWriter struct {
	headers  []rtp.Header
	payloads [][]byte
}

func (w *sinkWriter) WriteRTP(h *rtp.Header, p []byte) (int, error) {
	w.headers = append(w.headers, *h)
	w.payloads = append(w.payloads, append([]byte(nil), p...))
	return h.MarshalSize() + len(p), nil
}
func (w *sinkWriter) Write(b []byte) (int, error) { return len(b), nil }

// A NACK in the subscriber's numbering is answered from the track's shared cache with
// the subscriber's own rewrite: as RTX (OSN first) when negotiated.
func TestNACKAnsweredFromTrackCacheAsRTX(t *testing.T) {
	_, d, w := nackTrack(t, true)
	want := []int{3, 4, 17} // indexes of forwarded packets
	var seqs []uint16
	for _, i := range want {
		seqs = append(seqs, w.headers[i].SequenceNumber)
	}
	d.answerNACK(&rtcp.TransportLayerNack{MediaSSRC: w.headers[0].SSRC, Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)})
	d.answerNACK(&rtcp.TransportLayerNack{MediaSSRC: 4242, Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)}) // another stream's
	if got := len(w.headers) - 20; got != len(want) {
		t.Fatalf("%d retransmissions, want %d", got, len(want))
	}
	for k, i := range want {
		h, p := w.headers[20+k], w.payloads[20+k]
		orig := w.headers[i]
		if h.SSRC != 7777 || h.PayloadType != 97 || h.SequenceNumber != uint16(k) {
			t.Errorf("retransmission %d: ssrc %d pt %d seq %d, want RTX 7777/97/%d", k, h.SSRC, h.PayloadType, h.SequenceNumber, k)
		}
		if binary.BigEndian.Uint16(p) != orig.SequenceNumber || h.Timestamp != orig.Timestamp || len(p) != 2+len(w.payloads[i]) || p[2] != w.payloads[i][0] {
			t.Errorf("retransmission %d: OSN %d ts %d, want the original %d ts %d and payload", k, binary.BigEndian.Uint16(p), h.Timestamp, orig.SequenceNumber, orig.Timestamp)
		}
	}
	if resent, missed := d.Retransmissions(); resent != 3 || missed != 0 {
		t.Fatalf("counts: %d resent, %d missed", resent, missed)
	}
}

func TestNACKWithoutRTXResendsTheOriginal(t *testing.T) {
	_, d, w := nackTrack(t, false)
	orig := w.headers[5]
	before := orig.SequenceNumber - 30 // before the subscriber's first packet
	d.answerNACK(&rtcp.TransportLayerNack{MediaSSRC: orig.SSRC, Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{orig.SequenceNumber, before})})
	if got := len(w.headers) - 20; got != 1 {
		t.Fatalf("%d retransmissions, want 1", got)
	}
	if h := w.headers[20]; h.SSRC != orig.SSRC || h.SequenceNumber != orig.SequenceNumber || h.Timestamp != orig.Timestamp || h.PayloadType != orig.PayloadType {
		t.Fatalf("retransmission %+v, want the original %+v", h, orig)
	}
	if _, missed := d.Retransmissions(); missed != 1 {
		t.Fatalf("%d missed, want 1 (the packet before the first)", missed)
	}
}

// Real peers: a subscriber's NACK reaches the bridge through pion and is answered.
func TestNACKOverPeers(t *testing.T) {
	br := newTestBridge(t)
	r := &room{}
	pub := r.join(t, br, "pub")
	sub := r.join(t, br, "sub")
	pub.publish()
	var rv *received
	eventually(t, 15*time.Second, func() string {
		if rv = sub.got("stream-pub", webrtc.RTPCodecTypeVideo); rv == nil || rv.packets.Load() < 10 {
			return "subscriber not receiving video yet"
		}
		return ""
	})
	var d *DownTrack
	for _, x := range sub.peer.DownTracks() {
		if x.Kind() == webrtc.RTPCodecTypeVideo {
			d = x
		}
	}
	eventually(t, 15*time.Second, func() string {
		seq := uint16(rv.lastSeq.Load())
		if err := sub.sub.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: rv.ssrc.Load(),
			Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{seq - 2, seq - 1})}}); err != nil {
			return err.Error()
		}
		if resent, _ := d.Retransmissions(); resent < 2 {
			return "no retransmission yet"
		}
		return ""
	})
	// The media went out through the batched egress (udpbatch), not one sendto each.
	if st := br.EgressStats(); st.Batches == 0 || st.Datagrams < st.Batches || st.Errors != 0 {
		t.Fatalf("egress stats %+v: want datagrams sent in batches, no errors", st)
	}
}
