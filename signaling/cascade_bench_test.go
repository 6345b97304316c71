package signaling_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/cau-project/cau/client"
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
// number of communes (default 24; the ratio is 1/N by construction, this measures it).
func BenchmarkProvinceUplinkBytes(b *testing.B) {
	n := 24
	if v := os.Getenv("CAU_BENCH_ENDPOINTS"); v != "" {
		if _, err := fmt.Sscan(v, &n); err != nil {
			b.Fatalf("CAU_BENCH_ENDPOINTS=%q: %v", v, err)
		}
	}
	measure := func(cascadeOn bool) uint64 {
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
		uplink := func() uint64 {
			if cascadeOn {
				st, _ := c.relayStat("local", "br-prov")
				return st.BytesSent
			}
			var sum uint64
			agent := c.sig.Local().Agent()
			for _, s := range subs {
				st, err := agent.Stats(c.sig.PeerOf("prov-meeting", s.Self.ID))
				if err == nil {
					sum += st.BytesSent
				}
			}
			return sum
		}
		// Relay counters arrive with the bridge's heartbeat: wait for two of them.
		time.Sleep(2 * time.Second)
		start := uplink()
		time.Sleep(5 * time.Second)
		time.Sleep(1100 * time.Millisecond)
		return uplink() - start
	}
	b.ResetTimer()
	flat := measure(false)
	cascaded := measure(true)
	b.StopTimer()
	if cascaded == 0 || flat == 0 {
		b.Fatalf("no bytes measured: flat %d, cascade %d", flat, cascaded)
	}
	b.ReportMetric(float64(n), "communes")
	b.ReportMetric(float64(flat)/5/1e3, "kB/s-flat")
	b.ReportMetric(float64(cascaded)/5/1e3, "kB/s-cascade")
	b.ReportMetric(float64(cascaded)/float64(flat), "ratio")
}
