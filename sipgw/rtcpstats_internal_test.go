package sipgw

import (
	"math"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// TestLegStats: loss across a sequence number wrap, jitter of a steady stream, the
// reception block sent to the room, and the round trip from the room's answer to a
// sender report.
func TestLegStats(t *testing.T) {
	s := &legStats{clock: g711Rate}
	t0 := time.Unix(1_700_000_000, 0)
	seq, ts := uint16(65530), uint32(1000)
	received := 0
	for i := range 100 {
		if i%10 != 3 { // every tenth packet lost
			s.receivedPacket(&rtp.Header{SSRC: 7, SequenceNumber: seq, Timestamp: ts}, 172, t0.Add(time.Duration(i)*20*time.Millisecond))
			received++
		}
		seq++
		ts += frame8k
	}
	f := s.figures()
	if f.recvPackets != uint64(received) || math.Abs(f.lossTotal-0.1) > 0.001 {
		t.Errorf("received %d, loss %.3f; want %d and 0.100", f.recvPackets, f.lossTotal, received)
	}
	if f.jitter > 0.0005 {
		t.Errorf("jitter %v s of a stream on time", f.jitter)
	}
	s.sent(5000, 160)
	pkt := s.report(99, t0.Add(2*time.Second))
	sr, ok := pkt.(*rtcp.SenderReport)
	if !ok || len(sr.Reports) != 1 {
		t.Fatalf("report %T %+v, want a sender report with a block", pkt, pkt)
	}
	b := sr.Reports[0]
	if b.SSRC != 7 || b.TotalLost != 10 || b.FractionLost != 25 || b.LastSequenceNumber != 1<<16+(65530+99)%(1<<16) {
		t.Errorf("block %+v: want SSRC 7, 10 lost, fraction 25/256, highest %d", b, 1<<16+(65530+99)%(1<<16))
	}
	if sr.PacketCount != 1 || sr.OctetCount != 160 {
		t.Errorf("sender report counts %d packets %d bytes, want 1 and 160", sr.PacketCount, sr.OctetCount)
	}
	// The room held the report 50 ms before answering; it came back 80 ms after it went.
	rr := rtcp.ReceptionReport{SSRC: 99, LastSenderReport: uint32(sr.NTPTime >> 16), Delay: 65536 / 20, Jitter: 80,
		FractionLost: 64}
	rtt := s.roomReport(&rr, t0.Add(2*time.Second+80*time.Millisecond))
	if rtt < 29*time.Millisecond || rtt > 31*time.Millisecond {
		t.Errorf("round trip %v, want 30 ms", rtt)
	}
	if f := s.figures(); f.roomLoss != 0.25 || f.roomJitter != 0.01 || !f.reported {
		t.Errorf("room's figures %+v: want loss 0.25, jitter 0.01 s", f)
	}
	// An LSR the gateway never sent gives no round trip.
	rr.LastSenderReport++
	if rtt := s.roomReport(&rr, t0.Add(3*time.Second)); rtt != 0 {
		t.Errorf("round trip %v from an unknown LSR", rtt)
	}
}
