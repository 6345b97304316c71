package monitor

import (
	"math"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gathered is one family's series: "label=value,…" → value.
type gathered map[string]float64

func gather(t *testing.T, reg *prometheus.Registry) map[string]gathered {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]gathered{}
	for _, f := range fams {
		g := gathered{}
		for _, m := range f.GetMetric() {
			g[labelString(m.GetLabel())] = value(m)
		}
		out[f.GetName()] = g
	}
	return out
}

func labelString(ls []*dto.LabelPair) string {
	var parts []string
	for _, l := range ls {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return math.NaN()
}

func TestCollector(t *testing.T) {
	h := newHarness(t, testTree(t))
	reg := prometheus.NewRegistry()
	if err := reg.Register(h.m.Collector()); err != nil {
		t.Fatal(err)
	}
	bridges := map[string]string{"local": "central", "br-p1": "p1", "br-d1": "d1"}
	links := [][2]string{{"local", "br-p1"}, {"br-p1", "br-d1"}}
	sim := newRelaySim()
	bad, good := newEndpoint("a", "c1", "br-d1"), newEndpoint("b", "c2", "br-d1")
	stray := newEndpoint("x", "made-up-site", "br-d1")
	bad.up.RTTMs, bad.down.RTTMs = 400, 400
	for range 8 {
		bad.second(8)
		good.second(0)
		stray.second(0)
		h.step([]*endpoint{bad, good, stray}, sim.second(links, map[[2]string]float64{{"local", "br-p1"}: 3}, nil), bridges)
	}
	got := gather(t, reg)
	expect := func(name, labels string, want, tolerance float64) {
		t.Helper()
		v, ok := got[name][labels]
		if !ok {
			t.Errorf("%s{%s} missing; have %v", name, labels, got[name])
			return
		}
		if math.Abs(v-want) > tolerance {
			t.Errorf("%s{%s} = %v, want %v", name, labels, v, want)
		}
	}
	expect("cau_site_grade", "level=commune,site=c1", float64(GradePoor), 0)
	expect("cau_site_grade", "level=commune,site=c2", float64(GradeGood), 0)
	expect("cau_site_grade", "level=unknown,site=unknown", float64(GradeGood), 0)
	expect("cau_site_endpoints", "level=commune,site=c1", 1, 0)
	expect("cau_site_rtt_seconds", "level=commune,site=c1", 0.4, 1e-9)
	expect("cau_site_loss_ratio", "direction=up,level=commune,site=c1", 0.08, 0.002)
	expect("cau_site_loss_ratio", "direction=down,level=commune,site=c1", 0.08, 1e-9)
	expect("cau_site_jitter_seconds", "direction=down,level=commune,site=c1", 0.003, 1e-9)
	expect("cau_site_bitrate_bits_per_second", "direction=up,level=commune,site=c2", 1e6, 0)
	expect("cau_site_packets_total", "direction=up,level=commune,site=c2", 700, 1)
	expect("cau_site_packets_lost_total", "direction=up,level=commune,site=c1", 56, 1)
	expect("cau_site_uplink_grade", "level=province,site=p1", float64(GradeFair), 0)
	rl := "bridge=local,direction=down,peer_bridge=br-p1,peer_site=p1,site=central"
	expect("cau_relay_loss_ratio", rl, 0.03, 1e-9)
	expect("cau_relay_rtt_seconds", rl, 0.04, 1e-9)
	expect("cau_relay_grade", rl, float64(GradeFair), 0)
	expect("cau_relay_streams", rl, 2, 0)
	expect("cau_bridge_up", "bridge=br-d1,site=d1", 1, 0)
	expect("cau_bridge_endpoints", "bridge=br-d1,site=d1", 3, 0)
	expect("cau_bridge_endpoint_streams", "bridge=br-d1,direction=in,site=d1", 6, 0)
	expect("cau_bridge_relay_links", "bridge=br-p1,site=p1", 2, 0)
	expect("cau_monitor_endpoints", "grade=poor", 1, 0)
	expect("cau_monitor_alerts_open", "kind=site", 1, 0)
	if _, ok := got["cau_site_mos"]["level=commune,site=c1"]; !ok {
		t.Error("cau_site_mos missing")
	}
	// No label value comes from the client: the made-up site is nowhere.
	for name, series := range got {
		for labels := range series {
			if strings.Contains(labels, "made-up-site") {
				t.Errorf("%s{%s}: a client's site reached a label", name, labels)
			}
		}
	}
	if err := prometheusLint(reg); err != nil {
		t.Error(err)
	}
}

// prometheusLint checks names the way promlint would: base units and _total counters.
func prometheusLint(reg *prometheus.Registry) error {
	fams, err := reg.Gather()
	if err != nil {
		return err
	}
	var bad []string
	for _, f := range fams {
		n := f.GetName()
		isCounter := f.GetType() == dto.MetricType_COUNTER
		if isCounter != strings.HasSuffix(n, "_total") {
			bad = append(bad, n+": counters and only counters end in _total")
		}
		for _, unit := range []string{"_ms", "_milliseconds", "_percent", "_pct", "_kbps", "_bytes_per_second"} {
			if strings.Contains(n, unit) {
				bad = append(bad, n+": not a base unit")
			}
		}
	}
	if len(bad) > 0 {
		return &lintError{bad}
	}
	return nil
}

type lintError struct{ problems []string }

func (e *lintError) Error() string { return "metric names: " + strings.Join(e.problems, "; ") }
