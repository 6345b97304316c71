package sfu

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

func TestReceptionReportQuality(t *testing.T) {
	up := &UpTrack{codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{ClockRate: 90000}}}
	d := newDownTrack(up, nil, "v", "s")
	d.binding.Store(&binding{ssrc: 77})
	now := time.Now()
	sentSR := now.Add(-50 * time.Millisecond)
	d.noteReports([]rtcp.ReceptionReport{
		{SSRC: 12345, FractionLost: 200}, // another track's block: ignored
		{SSRC: 77, FractionLost: 64, Jitter: 2700, LastSenderReport: ntpMiddle32(sentSR), Delay: 10 * 65536 / 1000},
	}, now)
	q := d.Quality()
	if q.Reports != 1 {
		t.Fatalf("reports %d, want 1", q.Reports)
	}
	if q.FractionLost != 0.25 {
		t.Errorf("fraction lost %v, want 0.25", q.FractionLost)
	}
	if q.Jitter != 30*time.Millisecond {
		t.Errorf("jitter %v, want 30ms (2700 at 90 kHz)", q.Jitter)
	}
	if q.RTT < 39*time.Millisecond || q.RTT > 41*time.Millisecond {
		t.Errorf("rtt %v, want 40ms (50 since the SR minus 10 held)", q.RTT)
	}
}
