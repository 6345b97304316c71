package signaling_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
)

// BenchmarkRelayHopLatency measures the latency each relay hop adds, on loopback, from
// send timestamps carried in the media payload: a publisher at central and subscribers
// 0, 1, 2 and 3 hops below it (central, province, district, commune bridges).
func BenchmarkRelayHopLatency(b *testing.B) {
	c := startCascade(b, "prov", "dist", "comm")
	chair := c.join(b, "bench", "central", "chair")
	if err := chair.Publish(context.Background()); err != nil {
		b.Fatal(err)
	}
	sites := []string{"central", "prov", "dist", "comm"}
	subs := make([]*client.Client, len(sites))
	for i, s := range sites {
		subs[i] = c.join(b, "bench", s, "sub-"+s)
	}
	stream := chair.Self.Streams[protocol.SourceCamera]
	eventually(b, 20*time.Second, func() string {
		for _, s := range subs {
			if why := receivesFrom(s, chair, 100); why != "" {
				return why
			}
		}
		return ""
	})
	b.ResetTimer()
	before := make([]client.Histogram, len(subs))
	for i, s := range subs {
		before[i] = s.Stream(stream, "video").Latency()
	}
	time.Sleep(10 * time.Second)
	b.StopTimer()
	var p50, p99 [4]float64
	for i, s := range subs {
		h := s.Stream(stream, "video").Latency()
		h.Sub(&before[i])
		if h.Count() < 100 {
			b.Fatalf("%s: only %d latency samples", sites[i], h.Count())
		}
		p50[i] = float64(h.Quantile(0.50)) / 1e3
		p99[i] = float64(h.Quantile(0.99)) / 1e3
		b.ReportMetric(p50[i], fmt.Sprintf("us-p50-%dhop", i))
		b.ReportMetric(p99[i], fmt.Sprintf("us-p99-%dhop", i))
	}
	b.ReportMetric((p50[3]-p50[0])/3, "us-p50-per-hop")
	b.ReportMetric((p99[3]-p99[0])/3, "us-p99-per-hop")
}

// BenchmarkProvinceUplinkBytes compares the bytes that cross the province's WAN uplink in
// a province meeting — the chair at central, every other endpoint at one of the
// province's communes — when the province has its own bridge (cascade: one copy of each
// stream crosses, the province bridge fans out) and when every endpoint connects to the
// central bridge (flat: one copy per commune crosses). CAU_BENCH_ENDPOINTS sets the
// number of communes N (default 24). The ratio is 1/N by construction; the benchmark
// measures it and fails above 1.2/N (issue 12, test strength).
//
// Bytes are the RTP packets (header and payload) the central bridge's side of the uplink
// sent, from the hop counters of each connection's own transport (the relay peer's, or
// every commune endpoint's), over the time between the two readings. The two meetings
// run one after the other, each in its own sub-benchmark, so the flat one has ended
// (its cleanups run) before the cascade one is measured.
func BenchmarkProvinceUplinkBytes(b *testing.B) {
	n := 24
	if v := os.Getenv("CAU_BENCH_ENDPOINTS"); v != "" {
		if _, err := fmt.Sscan(v, &n); err != nil {
			b.Fatalf("CAU_BENCH_ENDPOINTS=%q: %v", v, err)
		}
	}
	// measure runs the meeting and returns the uplink's bytes per second.
	measure := func(b *testing.B, cascadeOn bool) float64 {
		var bridges []string
		if cascadeOn {
			bridges = []string{"prov"}
		}
		c := startCascade(b, bridges...)
		chair := c.join(b, "prov-meeting", "central", "chair")
		if err := chair.Publish(context.Background()); err != nil {
			b.Fatal(err)
		}
		subs := make([]*client.Client, n)
		for i := range subs {
			subs[i] = c.join(b, "prov-meeting", fmt.Sprintf("pc-%03d", i), "commune")
		}
		eventually(b, 60*time.Second, func() string {
			for _, s := range subs {
				if why := receivesFrom(s, chair, 30); why != "" {
					return why
				}
			}
			return ""
		})
		agent := c.sig.Local().Agent()
		uplink := func() uint64 {
			if cascadeOn {
				// The local bridge's relay counters are read now, not from a heartbeat.
				st, ok := c.relayStat(string(ids.LocalBridge), "br-prov")
				if !ok || st.Hop == nil {
					b.Fatal("no relay link from central to br-prov")
				}
				return st.Hop.Bytes
			}
			var sum uint64
			for _, s := range subs {
				st, err := agent.Stats(c.sig.PeerOf("prov-meeting", s.Self.ID))
				if err != nil {
					b.Fatal(err)
				}
				sum += st.Hop.Out.Bytes
			}
			return sum
		}
		t0, start := time.Now(), uplink()
		time.Sleep(5 * time.Second)
		t1, end := time.Now(), uplink()
		rate := float64(end-start) / t1.Sub(t0).Seconds()
		b.ReportMetric(rate/1e3, "kB/s")
		return rate
	}
	var flat float64
	b.Run("flat", func(b *testing.B) { flat = measure(b, false) })
	b.Run("cascade", func(b *testing.B) {
		cascaded := measure(b, true)
		if flat == 0 || cascaded == 0 {
			b.Fatalf("no bytes measured: flat %.0f B/s, cascade %.0f B/s", flat, cascaded)
		}
		ratio := cascaded / flat
		b.ReportMetric(float64(n), "communes")
		b.ReportMetric(ratio, "ratio")
		b.ReportMetric(ratio*float64(n), "ratio×N")
		if ratio > 1.2/float64(n) {
			b.Errorf("cascade/flat = %.4f for %d communes, want at most 1.2/N = %.4f", ratio, n, 1.2/float64(n))
		}
	})
}
