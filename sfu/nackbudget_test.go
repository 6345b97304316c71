package sfu

import (
	"testing"

	"github.com/pion/rtcp"
)

// TestNACKFloodIsBounded: a subscriber that NACKs every cached packet over and over
// cannot make the bridge send much more than it forwarded (issue 12, finding 9): the
// retransmissions stay within the burst plus half of what was forwarded.
func TestNACKFloodIsBounded(t *testing.T) {
	_, d, w := nackTrack(t, true)
	var seqs []uint16
	for _, h := range w.headers {
		seqs = append(seqs, h.SequenceNumber)
	}
	nack := &rtcp.TransportLayerNack{MediaSSRC: w.headers[0].SSRC, Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)}
	for i := 0; i < 100; i++ {
		d.answerNACK(nack)
	}
	forwarded := d.PacketsSent()
	resent, _ := d.Retransmissions()
	if limit := uint64(retransmitBurst) + forwarded/2; resent > limit {
		t.Fatalf("%d retransmissions for %d packets forwarded, want at most %d", resent, forwarded, limit)
	}
	if resent < uint64(len(seqs)) {
		t.Fatalf("only %d retransmissions: the first NACK of %d packets must be answered in full", resent, len(seqs))
	}
}
