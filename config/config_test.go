package config

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cau.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadOrder(t *testing.T) {
	p := writeFile(t, "http_addr: 0.0.0.0:9000\nice_udp_port: 9002\ndev: true\n")
	c, err := Load(p, env(map[string]string{"CAU_ICE_UDP_PORT": "9102", "CAU_PUBLIC_IPS": "203.0.113.1, 203.0.113.2"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "0.0.0.0:9000" {
		t.Errorf("file value lost: http_addr %q", c.HTTPAddr)
	}
	if c.ICEUDPPort != 9102 {
		t.Errorf("environment must override the file: ice_udp_port %d", c.ICEUDPPort)
	}
	if c.ICETCPPort != 7881 {
		t.Errorf("default lost: ice_tcp_port %d", c.ICETCPPort)
	}
	if len(c.PublicIPs) != 2 || c.PublicIPs[1] != "203.0.113.2" {
		t.Errorf("public ips %v", c.PublicIPs)
	}
}

func TestLoadRejects(t *testing.T) {
	cases := map[string]struct {
		file string
		env  map[string]string
		want string
	}{
		"unknown key":      {"dev: true\nhttp_adr: x\n", nil, "http_adr"},
		"not yaml":         {"dev: [\n", nil, "config"},
		"bad port env":     {"dev: true\n", map[string]string{"CAU_ICE_UDP_PORT": "seven"}, "CAU_ICE_UDP_PORT"},
		"port range":       {"dev: true\nice_udp_port: 70000\n", nil, "ice_udp_port"},
		"no key, not dev":  {"http_addr: 127.0.0.1:1\n", nil, "token_key"},
		"short key":        {"token_key: short\n", nil, "token_key"},
		"bad level":        {"dev: true\nlog_level: loud\n", nil, "log_level"},
		"bad format":       {"dev: true\nlog_format: xml\n", nil, "log_format"},
		"bad dev boolean":  {"", map[string]string{"CAU_DEV": "maybe"}, "CAU_DEV"},
		"missing tcp port": {"dev: true\nice_tcp_port: -2\n", nil, "ice_tcp_port"},
		"bad gc percent":   {"dev: true\ngc_percent: -5\n", nil, "gc_percent"},
		"gc off unbounded": {"dev: true\ngc_percent: -1\n", nil, "memory_limit"},
		"bad memory limit": {"dev: true\nmemory_limit: lots\n", nil, "memory_limit"},
		"tiny limit":       {"dev: true\nmemory_limit: 1MiB\n", nil, "under 64MiB"},
		"bad gc env":       {"dev: true\n", map[string]string{"CAU_GC_PERCENT": "half"}, "CAU_GC_PERCENT"},
	}
	for name, c := range cases {
		_, err := Load(writeFile(t, c.file), env(c.env))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", name, err, c.want)
		}
	}
}

func TestEmptyFileIsDefaults(t *testing.T) {
	c, err := Load(writeFile(t, ""), env(map[string]string{"CAU_DEV": "1"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != Default().HTTPAddr || !c.Dev {
		t.Fatalf("got %+v", c)
	}
}

// logLine is what the server logs at start-up about c.
func logLine(c Config) string {
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("starting", "config", c)
	return buf.String()
}

func TestSecretsNeverLogged(t *testing.T) {
	c := Default()
	c.TokenKey = "super-secret-signing-key-0123456789abcdef"
	c.PreviousTokenKeys = []string{"older-secret-signing-key-0123456789abcdef"}
	c.TURN.Secret = "turn-secret-0123456789"
	logged := logLine(c)
	if strings.Contains(logged, "secret") {
		t.Fatalf("a signing key reached the log: %s", logged)
	}
	if !strings.Contains(logged, "token_key_set=true") {
		t.Fatalf("the log should say a key is set: %s", logged)
	}
}

func TestStoreSettings(t *testing.T) {
	c, err := Load(writeFile(t, "dev: true\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "./data" || c.RedisURL != "" {
		t.Errorf("defaults: data_dir %q, redis_url %q", c.DataDir, c.RedisURL)
	}
	dir := t.TempDir()
	c, err = Load(writeFile(t, "dev: true\ndata_dir: /var/lib/cau\nredis_url: redis://127.0.0.1:6390/0\n"),
		env(map[string]string{"CAU_DATA_DIR": dir}))
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != dir || c.RedisURL != "redis://127.0.0.1:6390/0" {
		t.Errorf("file + env: data_dir %q (env must win), redis_url %q", c.DataDir, c.RedisURL)
	}
	c, err = Load(writeFile(t, "dev: true\n"), env(map[string]string{"CAU_REDIS_URL": "rediss://cau:pw@redis.example:6380/2"}))
	if err != nil || c.RedisURL != "rediss://cau:pw@redis.example:6380/2" {
		t.Errorf("CAU_REDIS_URL: %q, %v", c.RedisURL, err)
	}
	for name, file := range map[string]string{
		"no data dir":        "dev: true\ndata_dir: \"\"\n",
		"not a redis url":    "dev: true\nredis_url: http://127.0.0.1:6390\n",
		"redis url, no host": "dev: true\nredis_url: \"redis://\"\n",
	} {
		if _, err := Load(writeFile(t, file), env(nil)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// With Redis, no data directory is needed.
	if _, err := Load(writeFile(t, "dev: true\ndata_dir: \"\"\nredis_url: redis://127.0.0.1:6390\n"), env(nil)); err != nil {
		t.Errorf("redis without data_dir: %v", err)
	}
}

func TestRedisPasswordNeverLogged(t *testing.T) {
	c := Default()
	c.RedisURL = "redis://cau:hunter2-secret@10.0.0.5:6379/0"
	logged := logLine(c)
	if strings.Contains(logged, "hunter2") {
		t.Fatalf("the Redis password reached the log: %s", logged)
	}
	if !strings.Contains(logged, "10.0.0.5:6379") {
		t.Errorf("the log should name the Redis host: %s", logged)
	}
	_, err := Load(writeFile(t, "dev: true\nredis_url: \"http://u:hunter2@x\"\n"), env(nil))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("validation error %v must not show the password", err)
	}
}

func TestMemorySettings(t *testing.T) {
	c, err := Load(writeFile(t, "dev: true\ngc_percent: -1\nmemory_limit: 1536MiB\n"),
		env(map[string]string{"CAU_GC_PERCENT": "30"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.GCPercent != 30 || c.MemoryLimit != "1536MiB" {
		t.Errorf("gc_percent %d memory_limit %q: want 30 (environment over the file) and 1536MiB", c.GCPercent, c.MemoryLimit)
	}
	for in, want := range map[string]int64{
		"0": 0, "1048576": 1 << 20, "64MiB": 64 << 20, "2GB": 2e9, "1536 MiB": 1536 << 20, "5KB": 5000, "3B": 3,
		"1TiB": 1 << 40,
	} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1GiB", "1.5GiB", "9999999999999GiB", "12 parsecs"} {
		if n, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) = %d, want an error", bad, n)
		}
	}
}
