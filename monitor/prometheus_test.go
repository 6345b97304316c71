package monitor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/testutil"
)

// A real Prometheus server (the Debian package's) scrapes a running Cầu with the
// project's recording and alerting rules; the series must exist with the right labels.

// promResult is one series of an instant query's answer.
type promResult struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func promQuery(base, q string) ([]promResult, error) {
	res, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []promResult `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query %s: %w", q, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, body.Error)
	}
	return body.Data.Result, nil
}

func labelNames(m map[string]string) string {
	var names []string
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

func TestPrometheusScrapesCau(t *testing.T) {
	if testing.Short() {
		t.Skip("Prometheus test skipped in -short mode (testing.Short)")
	}
	bin := testutil.Tool(t, "prometheus", "prometheus")
	tree := testTree(t)
	a, err := app.Start(t.Context(), app.Config{HTTPAddr: "127.0.0.1:0", ICETCPPort: -1, Dev: true,
		Site: tree.Root().ID, Ancestry: tree.Ancestors, Tree: tree, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	wsURL := "ws" + strings.TrimPrefix(a.URL(), "http") + "/ws"
	join := func(site, name string, role auth.Role) *client.Client {
		tok, err := a.Keys().Sign(auth.Claims{Use: auth.UseJoin, Meeting: "prom", Site: site, Name: name, Role: role}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		c, err := client.Dial(ctx, wsURL, tok, client.Options{Loopback: true, Logger: testLogger()})
		if err != nil {
			t.Fatalf("join %s: %v", name, err)
		}
		t.Cleanup(c.Close)
		return c
	}
	chair := join("central", "Chủ trì", auth.RoleChair)
	if err := chair.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	join("c1", "Xã 1", auth.RoleRoom)
	join("no-such-site", "Stray", auth.RoleParticipant) // counted under site="unknown"

	// Prometheus with the project's rules, scraping every second.
	dir := t.TempDir()
	rules, err := filepath.Abs(filepath.Join(deployDir, "prometheus/rules/cau.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %s
scrape_configs:
  - job_name: cau
    static_configs:
      - targets: ['%s']
`, rules, strings.TrimPrefix(a.URL(), "http://"))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	promURL := fmt.Sprintf("http://127.0.0.1:%d", testutil.FreePort(t))
	out := &testutil.LockedBuffer{}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+strings.TrimPrefix(promURL, "http://"),
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = out, out
	t.Cleanup(func() { // after the process stopped (cleanups run last first)
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.Tail(10000))
		}
	})
	if err := testutil.StartProcess(t, cmd, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	start := time.Now()

	// Every series the console's figures need, with exactly the documented labels.
	want := []struct {
		query, labels string
	}{
		{`cau_site_grade{site="c1",level="commune"}`, "__name__,instance,job,level,site"},
		{`cau_site_grade{site="central",level="central"}`, "__name__,instance,job,level,site"},
		{`cau_site_grade{site="unknown",level="unknown"}`, "__name__,instance,job,level,site"},
		{`cau_site_endpoints{site="c1",level="commune"}`, "__name__,instance,job,level,site"},
		{`cau_site_rtt_seconds{site="c1",level="commune"}`, "__name__,instance,job,level,site"},
		{`cau_site_loss_ratio{site="c1",level="commune",direction="down"}`, "__name__,direction,instance,job,level,site"},
		{`cau_site_jitter_seconds{site="central",level="central",direction="up"}`, "__name__,direction,instance,job,level,site"},
		{`cau_site_bitrate_bits_per_second{site="central",direction="up"}`, "__name__,direction,instance,job,level,site"},
		{`cau_site_packets_total{site="c1",direction="down"}`, "__name__,direction,instance,job,level,site"},
		{`cau_bridge_up{bridge="local",site="central"}`, "__name__,bridge,instance,job,site"},
		{`cau_bridge_endpoints{bridge="local",site="central"}`, "__name__,bridge,instance,job,site"},
		{`level_grade:cau_sites:count{level="commune",grade="good"}`, "__name__,grade,level"},
		{`level:cau_site_endpoints:sum{level="commune"}`, "__name__,level"},
	}
	promBase := promURL
	eventually(t, 40*time.Second, func() string {
		for _, w := range want {
			res, err := promQuery(promBase, w.query)
			if err != nil {
				return err.Error()
			}
			if len(res) != 1 {
				return fmt.Sprintf("%s: %d series", w.query, len(res))
			}
			if got := labelNames(res[0].Metric); got != w.labels {
				return fmt.Sprintf("%s has labels %s, want %s", w.query, got, w.labels)
			}
		}
		return ""
	})
	t.Logf("PROMETHEUS: every series present %v after the server started", time.Since(start).Round(time.Millisecond))

	// Values: c1's endpoint receives the chair, its grade is good; no label carries the
	// stray endpoint's made-up site.
	if res, _ := promQuery(promBase, `cau_site_grade{site="c1"}`); res[0].Value[1] != "0" {
		t.Errorf("cau_site_grade{site=c1} = %v, want 0 (good) on loopback", res[0].Value[1])
	}
	if res, _ := promQuery(promBase, `cau_site_endpoints{site="c1"}`); res[0].Value[1] != "1" {
		t.Errorf("cau_site_endpoints{site=c1} = %v, want 1", res[0].Value[1])
	}
	res, err := promQuery(promBase, `count by (__name__) ({__name__=~"cau_.+", site="no-such-site"})`)
	if err != nil || len(res) != 0 {
		t.Errorf("series labelled with a client's site: %v %v", res, err)
	}
	// The rules loaded and evaluate without error.
	r, err := http.Get(promBase + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var rulesBody struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(r.Body).Decode(&rulesBody); err != nil {
		t.Fatal(err)
	}
	var n int
	for _, g := range rulesBody.Data.Groups {
		for _, rule := range g.Rules {
			n++
			if rule.Health == "err" {
				t.Errorf("rule %s: %s", rule.Name, rule.LastError)
			}
		}
	}
	if n < 10 {
		t.Errorf("Prometheus loaded %d rules", n)
	}
}
