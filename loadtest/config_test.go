package loadtest

import (
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"20/s": 20, "20": 20, "300/m": 5, " 2.5 /s": 2.5} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0/s", "-1", "x/s", "20/h"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) accepted", in)
		}
	}
}

func TestVideoShape(t *testing.T) {
	for _, c := range []struct{ kbps, fps, ppf int }{{2000, 30, 8}, {1000, 30, 4}, {300, 15, 3}, {50, 30, 1}} {
		ppf, size := videoShape(c.kbps, c.fps)
		if ppf != c.ppf || size > 1100 || size < 64 {
			t.Errorf("videoShape(%d, %d) = %d × %d B, want %d packets ≤ 1100 B", c.kbps, c.fps, ppf, size, c.ppf)
		}
		if got := ppf * size * 8 * c.fps / 1000; c.kbps >= 100 && (got < c.kbps*98/100 || got > c.kbps) {
			t.Errorf("videoShape(%d, %d) gives %d kbps", c.kbps, c.fps, got)
		}
	}
}

func TestServerURLs(t *testing.T) {
	ws, m, err := serverURLs("https://cau.example.vn/base/")
	if err != nil || ws != "wss://cau.example.vn/base/ws" || m != "https://cau.example.vn/base/metrics" {
		t.Errorf("got %q %q %v", ws, m, err)
	}
	ws, m, err = serverURLs("http://127.0.0.1:7880")
	if err != nil || ws != "ws://127.0.0.1:7880/ws" || m != "http://127.0.0.1:7880/metrics" {
		t.Errorf("got %q %q %v", ws, m, err)
	}
	if _, _, err := serverURLs("127.0.0.1:7880"); err == nil {
		t.Error("a URL without scheme was accepted")
	}
	if !isLoopback("http://127.0.0.1:7880") || !isLoopback("http://localhost") || isLoopback("http://10.0.0.1") {
		t.Error("isLoopback")
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
cau_bridge_rtp_packets_forwarded_total{kind="audio"} 1000
cau_bridge_rtp_packets_forwarded_total{kind="video",site="a b}"} 2.5e3
process_resident_memory_bytes 1.048576e+08
broken_line{
`
	sums, series, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if series[`cau_bridge_rtp_packets_forwarded_total{kind="audio"}`] != 1000 {
		t.Errorf("series %v", series)
	}
	if sums["process_cpu_seconds_total"] != 12.5 || sums["cau_bridge_rtp_packets_forwarded_total"] != 3500 ||
		sums["process_resident_memory_bytes"] != 104857600 {
		t.Errorf("sums %v", sums)
	}
}

func TestValidate(t *testing.T) {
	c := DefaultConfig()
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), "API token") {
		t.Errorf("no token: %v", err)
	}
	c = DefaultConfig()
	c.Token = "t"
	c.Mode, c.Publishers = ModeRotate, 1
	if err := c.validate(); err == nil {
		t.Error("rotate with one publisher accepted")
	}
	c = DefaultConfig()
	c.Token = "t"
	if err := c.validate(); err != nil || len(c.Sites) != c.Endpoints {
		t.Errorf("default config: %v, %d sites", err, len(c.Sites))
	}
}

// TestValidateLastN: talkers are publishers after the chair and need audio; the Last-N
// the report checks against defaults to the server's (9 videos, 3 audios).
func TestValidateLastN(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*Config)
		want string
	}{
		{"more talkers than publishers after the chair", func(c *Config) { c.Publishers, c.Talkers = 3, 3 }, "talkers 3"},
		{"talkers without audio", func(c *Config) { c.Publishers, c.Talkers, c.Media = 4, 2, MediaVideo }, "need audio"},
		{"talkers in rotate mode", func(c *Config) { c.Publishers, c.Talkers, c.Mode = 4, 2, ModeRotate }, "rotate"},
		{"a turn too short", func(c *Config) { c.Publishers, c.Talkers, c.TalkEvery = 4, 2, 100*time.Millisecond }, "talk turn"},
		{"negative view tiles", func(c *Config) { c.ViewTiles = -1 }, "view tiles"},
	} {
		c := DefaultConfig()
		c.Token = "t"
		tc.set(&c)
		if err := c.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	c := Config{URL: "http://127.0.0.1:1", Token: "t", Meeting: "m", Endpoints: 4, Publishers: 4, Talkers: 3,
		VideoKbps: 100, FPS: 5, Duration: time.Second, Ramp: 1}
	if err := c.validate(); err != nil || c.VideoN != 9 || c.AudioN != 3 || c.TalkEvery != 2*time.Second {
		t.Errorf("zero Last-N settings: %v, video %d, audio %d, turn %v; want the defaults 9, 3, 2s", err, c.VideoN, c.AudioN, c.TalkEvery)
	}
}
