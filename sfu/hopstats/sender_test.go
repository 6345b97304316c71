package hopstats

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// One layer stamps TWCC numbers (transport-wide: one sequence across the connection's
// streams) and keeps each stream's sender report: media packets and octets, the newest
// frame's timestamp carried forward by the time since its first packet went out;
// retransmissions on the RTX stream are numbered but not counted as media; a stream that
// has sent nothing has no report.
func TestSenderReportsAndTWCCNumbers(t *testing.T) {
	i := newInterceptor(nil)
	const twccID, video, rtx, audio = 3, 1000, 1001, 2000
	exts := []interceptor.RTPHeaderExtension{{URI: transportCCURI, ID: twccID}}
	var stamped []uint16
	next := interceptor.RTPWriterFunc(func(h *rtp.Header, p []byte, _ interceptor.Attributes) (int, error) {
		stamped = append(stamped, binary.BigEndian.Uint16(h.GetExtension(twccID)))
		return h.MarshalSize() + len(p), nil
	})
	vw := i.BindLocalStream(&interceptor.StreamInfo{SSRC: video, SSRCRetransmission: rtx, ClockRate: 90000,
		RTPHeaderExtensions: exts}, next)
	aw := i.BindLocalStream(&interceptor.StreamInfo{SSRC: audio, ClockRate: 48000, RTPHeaderExtensions: exts}, next)
	if sr := i.local[audio].report(time.Now()); sr != nil {
		t.Fatalf("a report before anything was sent: %+v", sr)
	}
	payload := make([]byte, 100)
	write := func(w interceptor.RTPWriter, ssrc uint32, seq uint16, ts uint32) {
		t.Helper()
		if _, err := w.Write(&rtp.Header{Version: 2, SSRC: ssrc, SequenceNumber: seq, Timestamp: ts}, payload, nil); err != nil {
			t.Fatal(err)
		}
	}
	write(vw, video, 10, 9000)
	write(vw, video, 11, 9000) // the same frame
	write(aw, audio, 500, 48000)
	write(vw, rtx, 1, 9000) // a retransmission
	write(vw, video, 12, 12000)
	for k, n := range stamped {
		if n != uint16(k) {
			t.Fatalf("TWCC numbers %v, want 0, 1, 2, … across the streams", stamped)
		}
	}
	s := i.local[video]
	at := s.lastTSAt.Add(500 * time.Millisecond)
	sr := s.report(at)
	if sr.SSRC != video || sr.PacketCount != 3 || sr.OctetCount != 300 {
		t.Fatalf("report %+v: want 3 media packets, 300 octets (the retransmission is not media)", sr)
	}
	if want := uint32(12000 + 45000); sr.RTPTime != want {
		t.Fatalf("RTP time %d, want %d (the newest frame's, 0.5 s later at 90 kHz)", sr.RTPTime, want)
	}
	if sr.NTPTime != ntpTime(at) || ntpTime(time.Unix(0, 0)) != 2208988800<<32 {
		t.Fatalf("NTP time %x", sr.NTPTime)
	}
	// Only media in order counts in the far end's feedback: numbers 0, 1, 2 and 4; not
	// 3, the retransmission.
	for n, want := range []bool{true, true, true, false, true} {
		if got := i.out.media.get(int64(n)); got != want {
			t.Fatalf("TWCC %d counted as media %v, want %v", n, got, want)
		}
	}
	// The reports go out through the connection's writer and are noted for RTT. (The
	// loop starts here too; mu keeps its reports, a second away, apart from these.)
	var mu sync.Mutex
	var sent []rtcp.Packet
	w := i.BindRTCPWriter(interceptor.RTCPWriterFunc(func(p []rtcp.Packet, _ interceptor.Attributes) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, p...)
		return 0, nil
	}))
	i.sendReports(w, []*localStream{i.local[video], i.local[audio]}, at)
	mu.Lock()
	i.mu.Lock()
	if len(sent) < 2 || i.srs[0].ssrc != video || i.srs[1].ssrc != audio {
		t.Fatalf("reports sent %v, noted %+v", sent, i.srs[:2])
	}
	i.mu.Unlock()
	mu.Unlock()
	i.UnbindLocalStream(&interceptor.StreamInfo{SSRC: audio})
	i.mu.Lock()
	_, ok := i.local[audio]
	i.mu.Unlock()
	if ok {
		t.Fatal("an unbound stream is still reported")
	}
	if err := i.Close(); err != nil {
		t.Fatal(err)
	}
}
