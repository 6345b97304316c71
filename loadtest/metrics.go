package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// serverSample is what the load tester reads from the server's /metrics at one moment.
type serverSample struct {
	At        time.Time
	CPU       float64 // process_cpu_seconds_total
	RSS       float64 // process_resident_memory_bytes
	Forwarded float64 // cau_bridge_rtp_packets_forwarded_total, all kinds
	Received  float64 // cau_bridge_rtp_packets_received_total, all kinds
	Dropped   float64 // cau_bridge_rtp_packets_dropped_total, all reasons
	DroppedBy map[string]float64
}

// scrapeMetrics reads the Prometheus text format and sums the series the report needs
// over their labels.
func scrapeMetrics(ctx context.Context, hc *http.Client, url string) (serverSample, error) {
	s := serverSample{At: time.Now()}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return s, fmt.Errorf("scrape %s: %w", url, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return s, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	sums, series, err := parseMetrics(resp.Body)
	if err != nil {
		return s, fmt.Errorf("scrape %s: %w", url, err)
	}
	s.DroppedBy = map[string]float64{}
	for k, v := range series {
		if reason, ok := strings.CutPrefix(k, `cau_bridge_rtp_packets_dropped_total{reason="`); ok {
			s.DroppedBy[strings.TrimSuffix(reason, `"}`)] += v
		}
	}
	s.CPU = sums["process_cpu_seconds_total"]
	s.RSS = sums["process_resident_memory_bytes"]
	s.Forwarded = sums["cau_bridge_rtp_packets_forwarded_total"]
	s.Received = sums["cau_bridge_rtp_packets_received_total"]
	s.Dropped = sums["cau_bridge_rtp_packets_dropped_total"]
	if _, ok := sums["process_cpu_seconds_total"]; !ok {
		return s, fmt.Errorf("scrape %s: no process_cpu_seconds_total", url)
	}
	return s, nil
}

// parseMetrics sums every sample of each metric name over its labels, and also returns
// each series by its full name with labels as written.
func parseMetrics(r io.Reader) (sums, series map[string]float64, err error) {
	sums, series = map[string]float64{}, map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, key, rest := line, line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, key, rest = line[:i], line[:i], line[i:]
		}
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			key = name + rest[:end+1]
			rest = rest[end+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		sums[name] += v
		series[key] += v
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read metrics: %w", err)
	}
	return sums, series, nil
}
