// Package config loads Cầu's configuration: defaults in code, then a YAML file (strict:
// unknown keys are errors), then CAU_* environment variables; command-line flags are
// applied last by the caller. Secrets are never printed: see Config.LogValue.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config is the configuration of `cau serve`.
type Config struct {
	// HTTPAddr serves pages, /ws, /api, /metrics. Default 127.0.0.1:7880.
	HTTPAddr string `yaml:"http_addr"`
	// ICEUDPPort carries all media over UDP (one port, muxed). Default 7882.
	ICEUDPPort int `yaml:"ice_udp_port"`
	// ICETCPPort carries media for networks that block UDP; -1 disables. Default 7881.
	ICETCPPort int `yaml:"ice_tcp_port"`
	// PublicIPs are announced instead of the host's addresses (NAT 1:1).
	PublicIPs []string `yaml:"public_ips"`
	// RelayPorts ("40000-40999") bounds the UDP ports of relay links to `cau bridge`
	// processes, each link's connections on sockets of their own; empty takes any free
	// port. Read by sfu.ParsePortRange.
	RelayPorts string `yaml:"relay_ports"`
	// Dev enables the fixed dev signing key, loopback candidates and demo links.
	Dev bool `yaml:"dev"`
	// TokenKey signs and verifies JWTs (≥ 32 bytes). Required outside dev mode.
	TokenKey string `yaml:"token_key"`
	// PreviousTokenKeys still verify during a key rotation.
	PreviousTokenKeys []string `yaml:"previous_token_keys"`
	// AllowedOrigins are extra browser origins allowed to open /ws.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// SitesFile is the site tree (YAML: sites with id, name, level, parent). Empty in dev
	// mode means the built-in four-level example.
	SitesFile string `yaml:"sites_file"`
	// DataDir holds the embedded store, <data_dir>/cau.db (bbolt). Default ./data.
	// Unused when RedisURL is set.
	DataDir string `yaml:"data_dir"`
	// RedisURL, when set, keeps state in Redis instead of the embedded store (keys
	// prefixed "cau:"), so several `cau signal` nodes share it:
	// redis://[user:password@]host:port/db, or rediss:// for TLS.
	RedisURL string `yaml:"redis_url"`
	// AdvertiseURL is the base URL the other signaling nodes reach this one at
	// (http://10.0.0.5:7880), for the meetings this node owns; with redis_url, required
	// unless http_addr names a host. See docs/deployment.md.
	AdvertiseURL string `yaml:"advertise_url"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level"`
	// LogFormat is text or json. Default text.
	LogFormat string `yaml:"log_format"`
	// TURN is the local bridge's embedded TURN server.
	TURN TURN `yaml:"turn"`
	// MaxParticipants caps one meeting's participants on a signaling node; 0 takes the
	// default (1000), -1 removes the cap. Over it a join gets error "capacity".
	MaxParticipants int `yaml:"max_participants"`
	// SlotsFrom is the meeting size, in sites, from which the join page receives cameras
	// and microphones in slots (a fixed set of tracks Last-N fills); 0 takes the default
	// (24), -1 never.
	SlotsFrom int `yaml:"slots_from"`
	// MaxSocketsPerAddr caps the open /ws sockets from one IP address; 0 takes the
	// default (256), -1 removes the cap (behind a reverse proxy). Over it: HTTP 429.
	MaxSocketsPerAddr int `yaml:"max_sockets_per_addr"`
	// MaxSessionsPerToken caps the sessions one join token holds at once on a signaling
	// node; 0 takes the default (16), -1 removes the cap. Over it: error "capacity".
	MaxSessionsPerToken int `yaml:"max_sessions_per_token"`
	// MaxJoinsPerTokenPerMinute caps the join attempts with one token per minute; 0 takes
	// the default (30), -1 removes the cap. Over it: error "rate_limited".
	MaxJoinsPerTokenPerMinute int `yaml:"max_joins_per_token_per_minute"`
	// MaxBridgePeers caps the endpoints on the local bridge (`cau serve`); 0 takes the
	// default (500), -1 removes the cap. Over it signaling places the endpoint on another
	// bridge, or refuses the join with "capacity".
	MaxBridgePeers int `yaml:"max_bridge_peers"`
	// RecordingsDir is where meetings are recorded (docs/recording.md). Default
	// <data_dir>/recordings; "off" turns recording off.
	RecordingsDir string `yaml:"recordings_dir"`
	// RecordingMaxAgeDays deletes recordings older than this many days; 0 keeps them.
	RecordingMaxAgeDays int `yaml:"recording_max_age_days"`
	// GCPercent is the Go collector's target (GOGC): the heap may grow this many percent
	// over the live heap before a collection. 0 takes the default (50, internal/memtune),
	// -1 collects only at memory_limit. The GOGC environment variable wins.
	GCPercent int `yaml:"gc_percent"`
	// MemoryLimit is the process's soft memory limit ("1536MiB", "2GB"; bytes without a
	// unit): near it the collector works harder instead of letting the heap grow. Empty:
	// none. The GOMEMLIMIT environment variable wins. Read by ParseBytes.
	MemoryLimit string `yaml:"memory_limit"`
}

// TURN configures the embedded TURN server (see package turnserver). It runs when a
// secret is set, and in dev mode (with a random secret) on loopback.
type TURN struct {
	// Secret is the TURN REST shared secret; credentials are minted with it at join.
	// Empty outside dev mode: no TURN server.
	Secret string `yaml:"secret"`
	// UDPAddr is the TURN/UDP listen address. Default ":3478".
	UDPAddr string `yaml:"udp_addr"`
	// TCPAddr carries TURN over TCP and, with a certificate, over TLS. Default ":443"
	// (the unit grants CAP_NET_BIND_SERVICE); dev mode "127.0.0.1:5349".
	TCPAddr string `yaml:"tcp_addr"`
	// Host is the name or address clients reach the TURN server at. Default: the listen
	// address's IP, else the first public IP, else the HTTP address's host.
	Host string `yaml:"host"`
	// CertFile and KeyFile enable TURN over TLS on TCPAddr (PEM). Dev mode uses a
	// self-signed certificate when they are empty.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// MaxAllocationsPerUser bounds each endpoint's allocations. Default 4.
	MaxAllocationsPerUser int `yaml:"max_allocations_per_user"`
}

// Default returns the built-in configuration.
func Default() Config {
	return Config{
		HTTPAddr:   "127.0.0.1:7880",
		ICEUDPPort: 7882,
		ICETCPPort: 7881,
		DataDir:    "./data",
		LogLevel:   "info",
		LogFormat:  "text",
	}
}

// Load builds the configuration from the defaults, the YAML file at path (if path is not
// empty) and the environment (getenv, usually os.Getenv).
func Load(path string, getenv func(string) string) (Config, error) {
	c := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("read config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		// An empty file is fine: yaml.v3 reports it as io.EOF.
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := c.applyEnv(getenv); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// applyEnv overrides c with the CAU_* variables that are set: strings as they are,
// lists comma-separated, numbers in decimal, CAU_DEV as a boolean.
func (c *Config) applyEnv(getenv func(string) string) error {
	str := func(dst *string) func(string) error {
		return func(v string) error { *dst = v; return nil }
	}
	list := func(dst *[]string) func(string) error {
		return func(v string) error { *dst = splitList(v); return nil }
	}
	num := func(dst *int) func(string) error { return parsed(dst, strconv.Atoi, "a number") }
	boolean := func(dst *bool) func(string) error { return parsed(dst, strconv.ParseBool, "a boolean") }
	for _, e := range []struct {
		key string
		set func(string) error
	}{
		{"CAU_HTTP_ADDR", str(&c.HTTPAddr)},
		{"CAU_ICE_UDP_PORT", num(&c.ICEUDPPort)},
		{"CAU_ICE_TCP_PORT", num(&c.ICETCPPort)},
		{"CAU_PUBLIC_IPS", list(&c.PublicIPs)},
		{"CAU_RELAY_PORTS", str(&c.RelayPorts)},
		{"CAU_TOKEN_KEY", str(&c.TokenKey)},
		{"CAU_PREVIOUS_TOKEN_KEYS", list(&c.PreviousTokenKeys)},
		{"CAU_ALLOWED_ORIGINS", list(&c.AllowedOrigins)},
		{"CAU_SITES_FILE", str(&c.SitesFile)},
		{"CAU_DATA_DIR", str(&c.DataDir)},
		{"CAU_RECORDINGS_DIR", str(&c.RecordingsDir)},
		{"CAU_REDIS_URL", str(&c.RedisURL)},
		{"CAU_ADVERTISE_URL", str(&c.AdvertiseURL)},
		{"CAU_LOG_LEVEL", str(&c.LogLevel)},
		{"CAU_LOG_FORMAT", str(&c.LogFormat)},
		{"CAU_TURN_SECRET", str(&c.TURN.Secret)},
		{"CAU_TURN_UDP_ADDR", str(&c.TURN.UDPAddr)},
		{"CAU_TURN_TCP_ADDR", str(&c.TURN.TCPAddr)},
		{"CAU_TURN_HOST", str(&c.TURN.Host)},
		{"CAU_TURN_CERT_FILE", str(&c.TURN.CertFile)},
		{"CAU_TURN_KEY_FILE", str(&c.TURN.KeyFile)},
		{"CAU_MAX_PARTICIPANTS", num(&c.MaxParticipants)},
		{"CAU_SLOTS_FROM", num(&c.SlotsFrom)},
		{"CAU_MAX_SOCKETS_PER_ADDR", num(&c.MaxSocketsPerAddr)},
		{"CAU_MAX_SESSIONS_PER_TOKEN", num(&c.MaxSessionsPerToken)},
		{"CAU_MAX_JOINS_PER_TOKEN_PER_MINUTE", num(&c.MaxJoinsPerTokenPerMinute)},
		{"CAU_MAX_BRIDGE_PEERS", num(&c.MaxBridgePeers)},
		{"CAU_GC_PERCENT", num(&c.GCPercent)},
		{"CAU_MEMORY_LIMIT", str(&c.MemoryLimit)},
		{"CAU_DEV", boolean(&c.Dev)},
	} {
		if v := getenv(e.key); v != "" {
			if err := e.set(v); err != nil {
				return fmt.Errorf("%s=%q: %w", e.key, v, err)
			}
		}
	}
	return nil
}

// parsed is an applyEnv setter that stores the value parse makes of the variable in dst,
// or says the variable is not what (parse's own error names no variable).
func parsed[T any](dst *T, parse func(string) (T, error), what string) func(string) error {
	return func(v string) error {
		x, err := parse(v)
		if err != nil {
			return errors.New("not " + what)
		}
		*dst = x
		return nil
	}
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	if c.HTTPAddr == "" {
		return errors.New("config: http_addr is empty")
	}
	if c.ICEUDPPort < 0 || c.ICEUDPPort > 65535 {
		return fmt.Errorf("config: ice_udp_port %d out of range", c.ICEUDPPort)
	}
	if c.ICETCPPort < -1 || c.ICETCPPort > 65535 {
		return fmt.Errorf("config: ice_tcp_port %d out of range (-1 disables)", c.ICETCPPort)
	}
	if !c.Dev && len(c.TokenKey) < 32 {
		return errors.New("config: token_key (or CAU_TOKEN_KEY) of at least 32 bytes is required outside dev mode")
	}
	if c.RedisURL == "" && c.DataDir == "" {
		return errors.New("config: data_dir is empty (set it, or redis_url)")
	}
	if c.RedisURL != "" {
		u, err := url.Parse(c.RedisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") || (u.Host == "" && u.Path == "") {
			return fmt.Errorf("config: redis_url %q: want redis://host:port/db, rediss://… or unix:///path", RedactURL(c.RedisURL))
		}
	}
	if c.AdvertiseURL != "" {
		u, err := url.Parse(c.AdvertiseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("config: advertise_url %q: want http://host:port or https://host:port", c.AdvertiseURL)
		}
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		return err
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("config: log_format %q: want text or json", c.LogFormat)
	}
	if c.TURN.Secret != "" && len(c.TURN.Secret) < 16 {
		return errors.New("config: turn.secret (CAU_TURN_SECRET) must be at least 16 bytes")
	}
	if (c.TURN.CertFile == "") != (c.TURN.KeyFile == "") {
		return errors.New("config: turn.cert_file and turn.key_file go together")
	}
	return c.validateMemory()
}

func (c Config) validateMemory() error {
	if c.GCPercent < -1 {
		return fmt.Errorf("config: gc_percent %d: want a percentage, 0 for the default or -1 for off", c.GCPercent)
	}
	if c.MemoryLimit != "" {
		n, err := ParseBytes(c.MemoryLimit)
		if err != nil {
			return fmt.Errorf("config: memory_limit: %w", err)
		}
		if n < 64<<20 {
			return fmt.Errorf("config: memory_limit %q is under 64MiB: the server would do little but collect", c.MemoryLimit)
		}
	} else if c.GCPercent == -1 {
		return errors.New("config: gc_percent -1 (off) needs a memory_limit, or the heap grows without bound")
	}
	return nil
}

// byteUnits are the suffixes ParseBytes takes, longest first where one ends another.
var byteUnits = []struct {
	suffix string
	n      int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

// ParseBytes reads a size: a whole number of bytes, optionally followed by B, KB, MB,
// GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), as GOMEMLIMIT does.
func ParseBytes(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.n
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q: want a size such as 1536MiB or 2GB", s)
	}
	return n * mult, nil
}

// ParseLevel maps a level name to slog's level.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("config: log_level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// RedactURL hides the password of a URL (redis://user:secret@host → redis://user:xxxxx@host)
// so that it can be logged; a string that does not parse is hidden whole.
func RedactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL hidden)"
	}
	return u.Redacted()
}

// LogValue implements slog.LogValuer so logging a Config never prints its keys.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("http_addr", c.HTTPAddr),
		slog.Int("ice_udp_port", c.ICEUDPPort),
		slog.Int("ice_tcp_port", c.ICETCPPort),
		slog.Any("public_ips", c.PublicIPs),
		slog.String("relay_ports", c.RelayPorts),
		slog.Bool("dev", c.Dev),
		slog.String("sites_file", c.SitesFile),
		slog.String("data_dir", c.DataDir),
		slog.String("redis_url", RedactURL(c.RedisURL)),
		slog.Bool("token_key_set", c.TokenKey != ""),
		slog.Int("previous_token_keys", len(c.PreviousTokenKeys)),
		slog.Bool("turn_shared_key_set", c.TURN.Secret != ""),
		slog.String("turn_udp_addr", c.TURN.UDPAddr),
		slog.String("turn_tcp_addr", c.TURN.TCPAddr),
		slog.Int("gc_percent", c.GCPercent),
		slog.String("memory_limit", c.MemoryLimit),
	)
}
