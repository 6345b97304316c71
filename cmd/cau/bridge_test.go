package main

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cau-project/cau/sfu"
)

func TestBridgeHTTP(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := sfu.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.PacketsOut.WithLabelValues("video").Add(42)
	srv, err := serveBridgeHTTP("127.0.0.1:0", reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	addr := srv.addr
	for path, want := range map[string]string{"/metrics": `cau_bridge_rtp_packets_forwarded_total{kind="video"} 42`, "/healthz": "ok",
		"/debug/pprof/": "goroutine"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
	if got := controlURLOrFail(t, "https://signal.example:7880/x"); got != "wss://signal.example:7880/bridge" {
		t.Errorf("control URL %q", got)
	}
	if _, err := controlURL("ftp://x"); err == nil {
		t.Error("an ftp URL was accepted as the signaling address")
	}
}

func controlURLOrFail(t *testing.T, raw string) string {
	t.Helper()
	u, err := controlURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
