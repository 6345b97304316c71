package monitor

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cau-project/cau/internal/testutil"
)

// The deploy/ files: Prometheus configuration and rules checked by promtool, and the
// Grafana dashboard and rules referring only to metrics that exist.

const deployDir = "../deploy"

func TestPromtool(t *testing.T) {
	bin := testutil.Tool(t, "prometheus", "promtool")
	dir := filepath.Join(deployDir, "prometheus")
	for _, args := range [][]string{
		{"check", "config", "prometheus.yml"},
		{"check", "rules", "rules/cau.rules.yml"},
		{"test", "rules", "tests/cau.rules.test.yml"},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// knownMetrics lists every metric name a Cầu process exports (the monitor's, the
// bridge's and signaling's, Go's and the process's) and every recording rule.
func knownMetrics(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{"up": true, "process_cpu_seconds_total": true}
	descs := make(chan *prometheus.Desc, 100)
	collector{}.Describe(descs)
	close(descs)
	fq := regexp.MustCompile(`fqName: "([a-z_:]+)"`)
	for d := range descs {
		known[fq.FindStringSubmatch(d.String())[1]] = true
	}
	names := regexp.MustCompile(`Name:\s*"(cau_[a-z_]+)"`)
	for _, f := range []string{"../sfu/metrics.go", "../signaling/metrics.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range names.FindAllStringSubmatch(string(b), -1) {
			known[m[1]] = true
		}
	}
	rules, err := os.ReadFile(filepath.Join(deployDir, "prometheus/rules/cau.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`record:\s*(\S+)`).FindAllStringSubmatch(string(rules), -1) {
		known[m[1]] = true
	}
	return known
}

// metricRefs finds the metric names a PromQL expression uses (cau_*, recording rules).
var metricRefs = regexp.MustCompile(`\b(cau_[a-z0-9_]+|[a-z0-9_]+:[a-z0-9_:]*cau_[a-z0-9_:]+)\b`)

func TestDashboardAndRulesUseExistingMetrics(t *testing.T) {
	known := knownMetrics(t)
	if refs := metricRefs.FindAllString(`rate(cau_nope_total[1m]) / level:cau_x:rate1m`, -1); len(refs) != 2 || known[refs[0]] {
		t.Fatalf("the metric-name check is broken: %q", refs)
	}
	check := func(where, expr string) {
		for _, m := range metricRefs.FindAllString(expr, -1) {
			if !known[m] {
				t.Errorf("%s: %q uses %s, which no Cầu process exports", where, expr, m)
			}
		}
	}
	rules, err := os.ReadFile(filepath.Join(deployDir, "prometheus/rules/cau.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`expr:\s*(\|[^\n]*\n(?:\s{10,}[^\n]*\n)+|[^\n]+)`).FindAllStringSubmatch(string(rules), -1) {
		check("rules", m[1])
	}

	b, err := os.ReadFile(filepath.Join(deployDir, "grafana/cau-link-quality.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var exprs int
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs++
			check("dashboard panel "+p.Title, tg.Expr)
		}
	}
	if dash.UID == "" || exprs < 10 {
		t.Errorf("dashboard uid %q with %d queries", dash.UID, exprs)
	}
	for _, want := range []string{"level_grade:cau_sites:count", "cau_site_loss_ratio", "cau_site_rtt_seconds", "cau_bridge_endpoints"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
}
