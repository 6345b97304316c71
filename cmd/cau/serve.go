package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/config"
	"github.com/cau-project/cau/internal/memtune"
	"github.com/cau-project/cau/internal/profiling"
	"github.com/cau-project/cau/lease"
	"github.com/cau-project/cau/presence"
	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/rooms/store/redis"
	"github.com/cau-project/cau/sfu"
	"github.com/cau-project/cau/signaling"
	"github.com/cau-project/cau/sipgw"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return serve(ctx, "serve", args, stdout, stderr)
}

func runSignal(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return serve(ctx, "signal", args, stdout, stderr)
}

// serve runs `cau serve` (signaling with its own bridge) or `cau signal` (signaling alone).
func serve(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", os.Getenv("CAU_CONFIG"), "YAML config file (env CAU_CONFIG)")
	dev := fs.Bool("dev", false, "dev mode: public dev signing key, loopback candidates, demo links")
	httpAddr := fs.String("http", "", "HTTP listen address (default 127.0.0.1:7880)")
	udpPort := fs.Int("udp-port", 0, "ICE UDP mux port (default 7882)")
	tcpPort := fs.Int("tcp-port", 0, "ICE-TCP port, -1 disables (default 7881)")
	publicIP := fs.String("public-ip", "", "comma-separated public IPs announced to endpoints (NAT 1:1)")
	relayPorts := fs.String("relay-ports", "", relayPortsUsage)
	logLevel := fs.String("log-level", "", "debug, info, warn or error")
	sitesFile := fs.String("sites", "", "site tree YAML (default: the built-in example in --dev)")
	debugHTTP := fs.String("debug-http", "", "serve Go profiles (/debug/pprof/) on this separate address, e.g. 127.0.0.1:6060; off if empty")
	sipAddr := fs.String("sip", "", "SIP listen address for room codecs, UDP and TCP (ip:port; default 127.0.0.1:5060 in --dev, else off; \"off\" disables)")
	sipAllow := fs.String("sip-allow", "", "comma-separated networks SIP calls are taken from (e.g. 10.20.0.0/16); with --sip outside --dev, this or --sip-accounts")
	sipSRTP := fs.String("sip-srtp", sipgw.SRTPOptional, "SIP media encryption: \"optional\" (SRTP with SDES keys when the room offers them) or \"mandatory\" (calls without SRTP get 488)")
	sipTLS := newSIPTLSFlags(fs)
	sipAccounts := fs.String("sip-accounts", "", "file of SIP digest accounts, one \"user site password\" a line: every call dialled in must prove one, and joins as its site")
	advertise := fs.String("advertise", "", "with redis_url: the URL other signaling nodes reach this one at (http://10.0.0.5:7880)")
	memLimit := fs.String("memory-limit", "", "soft memory limit of the process, e.g. 1536MiB (config memory_limit; GOMEMLIMIT wins); the collector target is gc_percent (default 50)")
	demoCascade := fs.Bool("demo-cascade", false, "with --dev: also start `cau bridge` processes down a province → district → commune chain")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	cfg, err := config.Load(*cfgPath, func(k string) string {
		if k == "CAU_DEV" && *dev {
			return "true" // the flag wins, and validation must know it before checking keys
		}
		return os.Getenv(k)
	})
	if err != nil {
		return err
	}
	// Flags override the file and the environment, but only where given.
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "http":
			cfg.HTTPAddr = *httpAddr
		case "udp-port":
			cfg.ICEUDPPort = *udpPort
		case "tcp-port":
			cfg.ICETCPPort = *tcpPort
		case "public-ip":
			cfg.PublicIPs = strings.Split(*publicIP, ",")
		case "relay-ports":
			cfg.RelayPorts = *relayPorts
		case "log-level":
			cfg.LogLevel = *logLevel
		case "sites":
			cfg.SitesFile = *sitesFile
		case "advertise":
			cfg.AdvertiseURL = *advertise
		case "memory-limit":
			cfg.MemoryLimit = *memLimit
		}
	})
	if err := cfg.Validate(); err != nil {
		return err
	}
	relayRange, err := sfu.ParsePortRange(cfg.RelayPorts)
	if err != nil {
		return fmt.Errorf("relay_ports: %w", err)
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	log.Info("starting", "version", version, "config", cfg)
	applyMemory(cfg, log)
	if *demoCascade && !cfg.Dev {
		return fmt.Errorf("--demo-cascade needs --dev")
	}
	tree, err := loadSites(cfg)
	if err != nil {
		return err
	}
	if cfg.RedisURL != "" {
		redis.SetLogger(log.With("component", "redis"))
	}
	store, tree, err := openStore(ctx, cfg, tree, log)
	if err != nil {
		return err
	}
	defer store.Close()
	leases, err := openLeases(cfg)
	if err != nil {
		return err
	}
	var presence signaling.Presence
	if leases == nil {
		if presence, err = openPresence(ctx, cfg, log); err != nil {
			return err
		}
	}
	var top string
	var ancestry signaling.Ancestry
	if tree != nil {
		top, ancestry = tree.Root().ID, tree.Ancestors
		log.Info("site tree loaded", "sites", tree.Len(), "top", top)
	}
	turnCfg, err := turnConfig(cfg)
	if err != nil {
		return err
	}
	sipCfg, err := sipConfig(*sipAddr, *sipAllow, *sipAccounts, cfg.Dev, tree)
	if err != nil {
		return err
	}
	sipCfg.SRTP = *sipSRTP
	if sipCfg.Addr != "" {
		if sipCfg.TLS, sipCfg.TLSClient, sipCfg.TLSAddr, err = sipTLS.config(); err != nil {
			return err
		}
	}
	a, err := app.Start(ctx, app.Config{
		HTTPAddr: cfg.HTTPAddr, ICEUDPPort: cfg.ICEUDPPort, ICETCPPort: cfg.ICETCPPort,
		PublicIPs: cfg.PublicIPs, RelayPorts: relayRange, Dev: cfg.Dev, TokenKey: cfg.TokenKey,
		PreviousTokenKeys: cfg.PreviousTokenKeys, AllowedOrigins: cfg.AllowedOrigins, Logger: log,
		NoBridge: name == "signal", Site: top, Ancestry: ancestry, Tree: tree, Store: store,
		Presence: presence, Leases: leases, TURN: turnCfg, MaxParticipants: cfg.MaxParticipants, MaxSocketsPerAddr: cfg.MaxSocketsPerAddr, SlotsFrom: cfg.SlotsFrom,
		MaxSessionsPerToken: cfg.MaxSessionsPerToken, MaxJoinsPerTokenPerMinute: cfg.MaxJoinsPerTokenPerMinute,
		MaxBridgePeers: cfg.MaxBridgePeers, RecordingsDir: recordingsDir(cfg), RecordingMaxAge: time.Duration(cfg.RecordingMaxAgeDays) * 24 * time.Hour,
		SIP: sipCfg,
	})
	if err != nil {
		return err
	}
	if *debugHTTP != "" {
		srv, _, err := profiling.Serve(*debugHTTP, log)
		if err != nil {
			_ = a.Close()
			return err
		}
		defer srv.Close()
	}
	if cfg.Dev {
		chain, err := demoChain(tree)
		if err == nil {
			err = seedDemo(ctx, store, tree, chain, log)
		}
		if err == nil && *demoCascade {
			err = startDemoBridges(ctx, a.URL(), chain[1:], cfg.ICEUDPPort, stderr)
		}
		if err == nil {
			err = printDemoLinks(stdout, a, tree, chain, *demoCascade)
		}
		if err != nil {
			_ = a.Close()
			return err
		}
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-a.Done():
		log.Error("http server stopped", "err", err)
	}
	return a.Close()
}

// sipConfig reads --sip: in dev mode SIP listens on sipgw.DefaultAddr unless told "off"
// (and runs without SIP if that address is taken),
// and calls join as the demo chain's last site (one the demo meeting invites); outside
// dev it is off unless an address is given.
//
// Without digest accounts the SIP port admits any caller it lets through into any
// meeting (there is no PIN), so outside dev it needs --sip-allow (the rooms' networks)
// or --sip-accounts.
func sipConfig(flagAddr, flagAllow, accountsFile string, dev bool, tree *rooms.Tree) (app.SIPConfig, error) {
	addr, optional := flagAddr, false
	if addr == "" && dev {
		addr, optional = sipgw.DefaultAddr, true
	}
	if addr == "" || addr == "off" {
		return app.SIPConfig{}, nil
	}
	c := app.SIPConfig{Addr: addr, Optional: optional}
	for _, s := range strings.Split(flagAllow, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return app.SIPConfig{}, fmt.Errorf("--sip-allow: %w", err)
		}
		c.Allow = append(c.Allow, p.Masked())
	}
	if accountsFile != "" {
		f, err := os.Open(accountsFile)
		if err != nil {
			return app.SIPConfig{}, fmt.Errorf("--sip-accounts: %w", err)
		}
		c.Accounts, err = sipgw.LoadAccounts(f)
		_ = f.Close()
		if err != nil {
			return app.SIPConfig{}, fmt.Errorf("--sip-accounts: %w", err)
		}
	}
	if len(c.Allow) == 0 && len(c.Accounts) == 0 && !dev {
		return app.SIPConfig{}, errors.New("--sip needs --sip-allow (the rooms' networks, e.g. 10.20.0.0/16): the SIP port admits whoever reaches it into any meeting")
	}
	if dev {
		chain, err := demoChain(tree)
		if err != nil {
			return app.SIPConfig{}, err
		}
		c.Site = chain[len(chain)-1]
	}
	return c, nil
}

// turnConfig maps the config's turn section onto the app's: dev mode listens on
// 127.0.0.1:3478 (UDP) and 127.0.0.1:5349 (TCP and TLS) unless told otherwise.
func turnConfig(cfg config.Config) (app.TURNConfig, error) {
	t := app.TURNConfig{Secret: cfg.TURN.Secret, UDPAddr: cfg.TURN.UDPAddr, TCPAddr: cfg.TURN.TCPAddr,
		Host: cfg.TURN.Host, MaxAllocationsPerUser: cfg.TURN.MaxAllocationsPerUser}
	if cfg.Dev && t.UDPAddr == "" {
		t.UDPAddr = "127.0.0.1:3478"
	}
	if cfg.Dev && t.TCPAddr == "" {
		t.TCPAddr = "127.0.0.1:5349"
	}
	if cfg.TURN.CertFile != "" {
		c, err := tls.LoadX509KeyPair(cfg.TURN.CertFile, cfg.TURN.KeyFile)
		if err != nil {
			return t, fmt.Errorf("turn certificate: %w", err)
		}
		t.Certificate = &c
	}
	return t, nil
}

func newLogger(cfg config.Config, w io.Writer) (*slog.Logger, error) {
	level, err := config.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

func printDemoLinks(w io.Writer, a *app.App, tree *rooms.Tree, chain []string, cascade bool) error {
	const meeting = demoMeeting
	fmt.Fprintf(w, "\nCầu is running at %s\n\n", a.URL())
	if cascade {
		fmt.Fprintf(w, "A bridge runs at each of %s: open links at different levels and watch the\nrelay links in the log (\"relay link opened\").\n\n", strings.Join(chain, " → "))
	}
	fmt.Fprintf(w, "Open two or more of these links in separate browser tabs (meeting %q):\n\n", meeting)
	picks := []string{chain[0]}
	if len(chain) > 2 {
		picks = append(picks, chain[1])
	}
	if cascade {
		picks = append(picks, chain[2:]...)
	} else if len(chain) > 1 {
		picks = append(picks, chain[len(chain)-1])
	}
	for i, site := range picks {
		role := auth.RoleParticipant
		if i == 0 {
			role = auth.RoleChair
		}
		name := tree.Name(site)
		tok, err := a.Keys().Sign(auth.Claims{Use: auth.UseJoin, Meeting: meeting, Site: site, Name: name, Role: role}, 24*time.Hour)
		if err != nil {
			return fmt.Errorf("demo token: %w", err)
		}
		fmt.Fprintf(w, "  %-34s %s/join/%s?token=%s\n", name, a.URL(), meeting, url.QueryEscape(tok))
	}
	if name, link, err := kioskLink(a, tree, chain); err == nil {
		fmt.Fprintf(w, "\nMeeting-room kiosk of %s (joins by itself):\n\n  %s\n", name, link)
	}
	if tok, err := a.Keys().Sign(auth.Claims{Use: auth.UseAPI, Name: "Kỹ thuật viên", Role: auth.RoleTechnician}, 24*time.Hour); err == nil {
		fmt.Fprintf(w, "\nTechnicians' console (link quality of every site):\n\n  %s/console?token=%s\n", a.URL(), url.QueryEscape(tok))
	}
	if gw := a.SIP(); gw != nil {
		fmt.Fprintf(w, "\nMeeting-room codec (SIP, UDP or TCP; see README \"Room codecs\"): dial\n\n  %s\n", gw.URI(meeting))
		if u := gw.TLSURI(meeting); u != "" {
			fmt.Fprintf(w, "  %s\n", u)
		}
	}
	fmt.Fprintf(w, "\nMetrics: %s/metrics   Health: %s/healthz   Stop: Ctrl-C\n\n", a.URL(), a.URL())
	return nil
}

// startDemoBridges starts one `cau bridge` process per site, each on its own UDP port
// after the server's, registered with the server at url. They stop with this process.
func startDemoBridges(ctx context.Context, url string, sites []string, basePort int, stderr io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("demo cascade: %w", err)
	}
	for i, site := range sites {
		port := 0
		if basePort > 0 {
			port = basePort + 2*(i+1)
		}
		cmd := exec.CommandContext(ctx, self, "bridge", "--dev", "--site", site, "--signal", url,
			"--udp-port", strconv.Itoa(port), "--tcp-port", "-1", "--log-level", "warn")
		cmd.Stdout, cmd.Stderr = stderr, stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("demo cascade: start bridge for %s: %w", site, err)
		}
		go func() { _ = cmd.Wait() }()
	}
	return nil
}

// openPresence shares participants with other signaling nodes through Redis when
// redis_url is set (several `cau signal` behind one address); nil otherwise.
func openPresence(ctx context.Context, cfg config.Config, log *slog.Logger) (signaling.Presence, error) {
	if cfg.RedisURL == "" {
		return nil, nil
	}
	rdb, err := redis.Dial(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("presence: redis_url: %w", err)
	}
	p, err := presence.NewRedis(ctx, rdb, "cau:", log)
	if err != nil {
		return nil, fmt.Errorf("presence: %w", err)
	}
	return p, nil
}

// openLeases shares meetings between signaling nodes when redis_url is set: each live
// meeting runs on the node holding its lease in Redis, and the others forward their
// sessions to it at its advertised URL (docs/deployment.md). Nil without Redis.
func openLeases(cfg config.Config) (signaling.Leases, error) {
	if cfg.RedisURL == "" {
		return nil, nil
	}
	addr := cfg.AdvertiseURL
	if addr == "" {
		host, port, err := net.SplitHostPort(cfg.HTTPAddr)
		if err != nil || host == "" || port == "0" || net.ParseIP(host).IsUnspecified() {
			return nil, fmt.Errorf("redis_url is set: set advertise_url (--advertise), the URL other signaling nodes reach this one at; http_addr %q does not name one", cfg.HTTPAddr)
		}
		addr = "http://" + cfg.HTTPAddr
	}
	rdb, err := redis.Dial(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("leases: redis_url: %w", err)
	}
	return lease.NewRedis(rdb, "cau:", addr, 0), nil
}

// recordingsDir is where the server records: the configured directory, by default
// recordings under the data directory; empty (off) when configured "off".
func recordingsDir(cfg config.Config) string {
	switch cfg.RecordingsDir {
	case "off":
		return ""
	case "":
		return filepath.Join(cfg.DataDir, "recordings")
	}
	return cfg.RecordingsDir
}

// applyMemory sets the collector target and the soft memory limit (internal/memtune).
// Validate has parsed the limit already.
func applyMemory(cfg config.Config, log *slog.Logger) {
	var limit int64
	if cfg.MemoryLimit != "" {
		limit, _ = config.ParseBytes(cfg.MemoryLimit)
	}
	s := memtune.Apply(cfg.GCPercent, limit, os.Getenv)
	log.Info("memory", "gc_percent", s.GCPercent, "gc_percent_from_GOGC", s.GCPercentFromEnv,
		"limit_bytes", s.Limit, "limit_from_GOMEMLIMIT", s.LimitFromEnv)
}
