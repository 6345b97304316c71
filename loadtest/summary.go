package loadtest

import (
	"fmt"
	"io"
	"strings"
)

// WriteText prints the report for a person: the headline figures and the verdict.
func (rep *Report) WriteText(w io.Writer) {
	c := rep.Config
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("Cầu load test: %d endpoints over %d sites, %d publishing (%s, %s), %s mode, window %.1f s after a %.1f s ramp",
		c.Endpoints, c.Sites, c.Publishers, c.Media, videoDesc(c), c.Mode, rep.WindowSeconds, rep.RampSeconds)
	e := rep.Endpoints
	p("  endpoints   joined %d/%d, with media %d, failed %d, dropped %d", e.Joined, e.Requested, e.WithMedia, e.Failed, e.Dropped)
	for _, f := range e.Failures[:min(len(e.Failures), 5)] {
		p("              #%d %s: %s", f.Endpoint, f.Site, f.Error)
	}
	p("  join        token→media p50 %.0f  p95 %.0f  p99 %.0f  max %.0f ms (n=%d); token→joined p95 %.0f ms; token→all streams p95 %.0f ms",
		rep.Join.P50, rep.Join.P95, rep.Join.P99, rep.Join.Max, rep.Join.Count, rep.SignalJoin.P95, rep.JoinAllStreams.P95)
	if st := rep.JoinSteps; st.Offer.Count > 0 {
		p("  join steps  p50/p95 ms: joined→offer %.0f/%.0f, →answer %.0f/%.0f, →ICE %.0f/%.0f, →DTLS %.0f/%.0f, →media %.0f/%.0f",
			st.Offer.P50, st.Offer.P95, st.Answer.P50, st.Answer.P95, st.ICE.P50, st.ICE.P95,
			st.DTLS.P50, st.DTLS.P95, st.Media.P50, st.Media.P95)
	}
	p("  streams     %d received (per endpoint %d–%d, expected %d)", rep.Streams.Total, rep.Streams.PerSubscriberMin,
		rep.Streams.PerSubscriberMax, rep.Streams.Expected)
	allToAll := ""
	if rep.LastN != nil {
		allToAll = " (expected all to all; Last-N forwards a few: see last-N)"
	}
	p("  packets     received %d of %d expected (%.2f%%), %d sent%s", rep.Packets.Received, rep.Packets.Expected,
		100*rep.Packets.Ratio, rep.Packets.Sent, allToAll)
	if rep.Frames.Sent > 0 {
		p("  frames      complete %d of %d expected (%.2f%%), %d sent", rep.Frames.Received, rep.Frames.Expected,
			100*rep.Frames.Ratio, rep.Frames.Sent)
	}
	p("  loss        overall %.3f%%, per subscriber mean %.3f%%, worst %.3f%% (#%d)", rep.Loss.Overall, rep.Loss.Mean,
		rep.Loss.Worst, rep.Loss.WorstEndpoint)
	p("  jitter      mean %.2f ms, worst subscriber %.2f ms (#%d); audio %.2f ms, video %.2f ms", rep.Jitter.Mean,
		rep.Jitter.Worst, rep.Jitter.WorstEndpoint, rep.JitterByKind["audio"], rep.JitterByKind["video"])
	p("  latency     p50 %.2f  p95 %.2f  p99 %.2f  max %.1f ms (%d packets)", rep.Latency.P50, rep.Latency.P95,
		rep.Latency.P99, rep.Latency.Max, rep.Latency.Count)
	if l := rep.Layers; l != nil {
		p("  layers      video packets low/middle/top %d/%d/%d; streams mostly at low/middle/top %d/%d/%d (top %.0f%%)",
			l.Packets[0], l.Packets[1], l.Packets[2], l.Streams[0], l.Streams[1], l.Streams[2], 100*l.TopShare)
	}
	rep.writeLastN(p)
	if s := rep.Server; s.Error != "" {
		p("  server      metrics unavailable: %s", s.Error)
	} else {
		p("  server      %.2f µs CPU per forwarded packet (%.0f pkt/s, %.0f%% of a core), %.2f MB per endpoint (RSS %.0f → %.0f MB), dropped %.0f %v",
			s.CPUMicrosPerPacket, s.ForwardedPerSecond, s.CPUPercent, s.MemoryPerEndpointBytes/1e6,
			s.RSSBaselineBytes/1e6, s.RSSEndBytes/1e6, s.DroppedPackets, s.DroppedByReason)
	}
	p("  tester      %.0f%% of a core, %.2f µs CPU per received packet", rep.Tester.CPUPercent, rep.Tester.CPUMicrosPerPacket)
	if c.Mode == ModeRotate {
		p("  floor       %d rotations", rep.Rotations)
	}
	if rep.Pass {
		p("PASS (errors %d)", rep.Errors)
	} else {
		p("FAIL: %s (errors %d)", strings.Join(rep.Violations, "; "), rep.Errors)
	}
}

func videoDesc(c ReportConfig) string {
	if c.Media == MediaAudio {
		return "Opus 32 kbps"
	}
	sim := ""
	if c.Simulcast {
		sim = " simulcast (+½, +¼)"
	}
	return fmt.Sprintf("VP8 %d kbps%s %d fps, %d×%d B per frame", c.VideoKbps, sim, c.FPS, c.PacketsPerFrame, c.PayloadBytes)
}
