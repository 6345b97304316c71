package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/bridge"
	"github.com/cau-project/cau/bridge/control"
	"github.com/cau-project/cau/config"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/internal/profiling"
	"github.com/cau-project/cau/sfu"
)

// relayPortsUsage is the --relay-ports flag's help, the same for `cau bridge` and `cau serve`.
const relayPortsUsage = "UDP port range of relay links between bridges, e.g. 40000-40999 (default any free port; " +
	"with --announce and no range, relay links use --udp-port)"

func runBridge(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	site := fs.String("site", "", "site whose subtree this bridge serves (required)")
	signalURL := fs.String("signal", "http://127.0.0.1:7880", "signaling server URL; comma-separated for several signaling nodes (registers with each)")
	id := fs.String("id", "", "bridge id (default bridge-<site>)")
	udpPort := fs.Int("udp-port", 7882, "ICE UDP mux port (0 = any)")
	tcpPort := fs.Int("tcp-port", 7881, "ICE-TCP port (-1 disables, 0 = any)")
	publicIP := fs.String("public-ip", "", "comma-separated public IPs announced to endpoints (NAT 1:1)")
	announce := fs.String("announce", "", "comma-separated extra ip:port UDP candidates (a port forward to --udp-port)")
	relayPorts := fs.String("relay-ports", "", relayPortsUsage)
	dev := fs.Bool("dev", false, "sign the bridge token with the dev key (for `cau serve --dev`)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	grace := fs.Duration("grace", 10*time.Second, "how long media keeps flowing through a signaling node's peers after its connection is lost (0: stop at once)")
	httpAddr := fs.String("http", "", "serve /metrics and /healthz on this address (e.g. 127.0.0.1:7890); off if empty")
	maxPeers := fs.Int("max-peers", 0, fmt.Sprintf("endpoints this bridge serves at most (0 = %d, -1 = no cap)", bridge.DefaultMaxPeers))
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *site == "" {
		fmt.Fprintln(stderr, "cau bridge: --site is required")
		return errUsage
	}
	if *id == "" {
		*id = "bridge-" + *site
	}
	var urls []string
	for _, raw := range strings.Split(*signalURL, ",") {
		ws, err := controlURL(strings.TrimSpace(raw))
		if err != nil {
			return err
		}
		urls = append(urls, ws)
	}
	token, err := bridgeToken(*site, *id, *dev)
	if err != nil {
		return err
	}
	log, err := newLogger(config.Config{LogLevel: *logLevel, LogFormat: "text"}, stderr)
	if err != nil {
		return err
	}
	var ips []string
	if *publicIP != "" {
		ips = strings.Split(*publicIP, ",")
	}
	var extra []string
	if *announce != "" {
		extra = strings.Split(*announce, ",")
	}
	relayRange, err := sfu.ParsePortRange(*relayPorts)
	if err != nil {
		return fmt.Errorf("--relay-ports: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := sfu.NewMetrics(reg)
	if err != nil {
		return err
	}
	limits, err := bridge.NewLimitMetrics(reg)
	if err != nil {
		return err
	}
	b, err := sfu.New(sfu.Config{ICEUDPPort: *udpPort, ICETCPPort: *tcpPort, PublicIPs: ips, Announce: extra, RelayPorts: relayRange,
		IncludeLoopback: *dev, Logger: log, Metrics: metrics})
	if err != nil {
		return err
	}
	defer b.Close()
	if *httpAddr != "" {
		srv, err := serveBridgeHTTP(*httpAddr, reg, log)
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	log.Info("bridge starting", "id", *id, "site", *site, "signal", urls)
	// One control connection per signaling node (issue 16): a meeting runs on the node
	// that owns it, which drives this bridge over its own connection. The connections
	// share one agent (the --max-peers cap holds across the nodes), and a peer passes
	// from a lost node to the meeting's new owner without a new handshake.
	var wg sync.WaitGroup
	shared := bridge.NewShared(b, bridge.SharedConfig{MaxPeers: *maxPeers, Limits: limits, Grace: *grace, Logger: log})
	for _, ws := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = bridge.Run(ctx, bridge.ClientConfig{SignalURL: ws, Token: token, ID: ids.BridgeID(*id), Site: ids.SiteID(*site),
				Bridge: b, Logger: log, Shared: shared})
		}()
	}
	wg.Wait()
	return nil
}

// controlURL turns a signaling base URL (http, https, ws or wss) into its /bridge socket.
func controlURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("--signal %q: want a URL like http://host:7880", raw)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("--signal %q: scheme must be http, https, ws or wss", raw)
	}
	u.Path = "/bridge"
	return u.String(), nil
}

// bridgeToken is CAU_BRIDGE_TOKEN (`cau token --role bridge --site S --bridge-id ID`: the
// credential a bridge host should hold, good for registering that bridge and nothing
// else), or one signed here with CAU_TOKEN_KEY (which can sign any token: for a host that
// runs signaling too), or with the dev key in dev mode.
func bridgeToken(site, id string, dev bool) (string, error) {
	if t := os.Getenv("CAU_BRIDGE_TOKEN"); t != "" {
		return t, nil
	}
	keys := auth.Keys{}
	switch key := os.Getenv("CAU_TOKEN_KEY"); {
	case key != "":
		keys.Current = []byte(key)
	case dev:
		keys.Current = []byte(auth.DevKey)
	default:
		return "", fmt.Errorf("set CAU_BRIDGE_TOKEN (cau token --role bridge) or CAU_TOKEN_KEY, or pass --dev")
	}
	return keys.Sign(control.BridgeClaims(ids.SiteID(site), ids.BridgeID(id)), 365*24*time.Hour)
}

// serveBridgeHTTP serves a bridge's /metrics (its cau_bridge_* counters, for the
// operations centre's Prometheus), /healthz and /debug/pprof/.
func serveBridgeHTTP(addr string, reg *prometheus.Registry, log *slog.Logger) (*bridgeHTTP, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("bridge http: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	profiling.Register(mux) // an operations port: the bridge serves no public HTTP
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Error("bridge http", "err", err)
		}
	}()
	log.Info("bridge metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return &bridgeHTTP{Server: srv, addr: ln.Addr().String()}, nil
}

// bridgeHTTP is the bridge's metrics server and the address it listens on.
type bridgeHTTP struct {
	*http.Server
	addr string
}
