// Package app assembles a running Cầu process: the bridge, signaling, the link monitor,
// the web pages and the HTTP endpoints (/ws, /metrics, /healthz, /readyz, the console's
// /api/v1/monitor/). cmd/cau and the end-to-end tests both start Cầu through it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cau-project/cau/api"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/bridge"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/internal/memtune"
	"github.com/cau-project/cau/monitor"
	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/sfu"
	"github.com/cau-project/cau/sfu/speaker"
	"github.com/cau-project/cau/signaling"
	"github.com/cau-project/cau/sipgw"
	"github.com/cau-project/cau/turnserver"
	"github.com/cau-project/cau/web"
	"github.com/cau-project/cau/whip"
)

// Config is what Start needs. Zero ports pick free ones (tests).
type Config struct {
	HTTPAddr   string
	ICEUDPPort int
	// ICETCPPort: -1 disables ICE-TCP, 0 picks a free port.
	ICETCPPort int
	PublicIPs  []string
	// RelayPorts bounds the UDP ports of the local bridge's relay links (sfu.Config).
	RelayPorts sfu.PortRange
	// Dev uses the public dev signing key unless TokenKey is set, and offers loopback
	// candidates.
	Dev               bool
	TokenKey          string
	PreviousTokenKeys []string
	AllowedOrigins    []string
	Logger            *slog.Logger
	// NoBridge runs signaling alone (`cau signal`): media goes through registered
	// `cau bridge` processes only.
	NoBridge bool
	// Site is the site the local bridge serves (the top of the tree), and Ancestry
	// places endpoints and bridges in the site tree (nil: all on the local bridge).
	Site     string
	Ancestry signaling.Ancestry
	// Tree is the site registry the link monitor labels sites and levels with (nil: every
	// endpoint counts under site "unknown"); the REST API starts from it too.
	Tree *rooms.Tree
	// Store keeps the registry, schedule, attendance and audit log for the REST API
	// (/api/v1/); nil makes the API answer 503.
	Store rooms.Store
	// Presence shares participants with other signaling nodes (Redis); nil for one node.
	Presence signaling.Presence
	// Leases runs each live meeting on one of several signaling nodes (Redis); nil for
	// one node (signaling.Config.Leases).
	Leases signaling.Leases
	// TURN configures the local bridge's embedded TURN server (off without a secret,
	// except in dev mode).
	TURN TURNConfig
	// MaxParticipants, MaxSocketsPerAddr, MaxSessionsPerToken,
	// MaxJoinsPerTokenPerMinute and MaxViewersPerToken are signaling's caps
	// (signaling.Config), MaxBridgePeers the local bridge's (bridge.Agent.SetMaxPeers);
	// 0 takes the defaults.
	MaxParticipants, MaxSocketsPerAddr int
	// SlotsFrom is signaling's meeting size for slots (signaling.Config.SlotsFrom).
	SlotsFrom                                      int
	MaxSessionsPerToken, MaxJoinsPerTokenPerMinute int
	MaxViewersPerToken                             int
	MaxBridgePeers                                 int
	// RecordingsDir is where meetings are recorded at the local bridge (a directory per
	// meeting; docs/recording.md); empty turns recording off. RecordingMaxAge deletes
	// recordings older than it (0 keeps them). Recording needs Store.
	RecordingsDir   string
	RecordingMaxAge time.Duration
	// SIP configures the SIP gateway for room codecs (off when SIP.Addr is empty).
	SIP SIPConfig
	// Speaker tunes the bridge's Last-N and dominant speaker; zero fields take
	// speaker.DefaultParams (9 videos, 3 audios).
	Speaker speaker.Params
	// FixedTopLayer turns the local bridge's simulcast adaptation off (sfu.Config): a
	// benchmark's reference.
	FixedTopLayer bool
	// MonitorHold is how long a better link grade must hold before it shows
	// (monitor.Config.Hold); 0 takes the monitor's 10 s. Tests shorten it.
	MonitorHold time.Duration
}

// App is a running Cầu server.
type App struct {
	cfg    Config
	log    *slog.Logger
	keys   auth.Keys
	ln     net.Listener
	http   *http.Server
	bridge *sfu.Bridge
	sig    *signaling.Server
	whip   *whip.Gateway
	sip    *sipgw.Gateway // nil when off
	mon    *monitor.Monitor
	// stopMon ends the monitor's sampling and its console streams (Close).
	stopMon context.CancelFunc
	ready   atomic.Bool
	served  chan error
	// turn is the local bridge's TURN server (nil when off); turnSecret and turnURLs
	// are set with it and read-only after.
	turn       *turnserver.Server
	turnSecret []byte
	turnURLs   []string
	// rec runs recordings (nil when off); stopped by Close before the bridge.
	rec *recordings
}

// OpenSpanHorizon is how far back, by meeting end, start-up looks for attendance spans
// an unclean stop left open.
const OpenSpanHorizon = 7 * 24 * time.Hour

// Start brings up the bridge, signaling and the HTTP server, and returns once they
// accept connections.
func Start(ctx context.Context, cfg Config) (*App, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	a := &App{cfg: cfg, log: log, served: make(chan error, 1)}
	switch {
	case cfg.TokenKey != "":
		if err := auth.CheckKey([]byte(cfg.TokenKey)); err != nil && !cfg.Dev {
			return nil, fmt.Errorf("start: token key: %w", err)
		}
		a.keys.Current = []byte(cfg.TokenKey)
	case cfg.Dev:
		a.keys.Current = []byte(auth.DevKey)
		log.Warn("dev mode: tokens are signed with the public dev key; do not expose this server")
	default:
		return nil, errors.New("start: a token key is required outside dev mode")
	}
	for i, k := range cfg.PreviousTokenKeys {
		// Outside dev an empty or short previous key is a configuration slip that would
		// accept forged tokens: refuse to start. (Verify ignores such keys anyway.)
		if err := auth.CheckKey([]byte(k)); err != nil && !cfg.Dev {
			return nil, fmt.Errorf("start: previous token key %d: %w", i+1, err)
		}
		a.keys.Previous = append(a.keys.Previous, []byte(k))
	}

	// A crash wrote no disconnects: close the spans it left open before admitting anyone,
	// so the roll call does not count those sites online forever. Only a node alone on
	// its store may: with presence, another live node's endpoints have open spans too.
	if cfg.Store != nil && cfg.Presence == nil && cfg.Leases == nil {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		n, err := rooms.CloseOpenSpans(ctx, cfg.Store, time.Now().Add(-OpenSpanHorizon))
		cancel()
		switch {
		case err != nil:
			log.Error("close attendance spans left open", "err", err, "closed", n)
		case n > 0:
			log.Warn("closed attendance spans left open by an unclean stop", "spans", n)
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sfuMetrics, err := sfu.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("start: bridge metrics: %w", err)
	}
	sigMetrics, err := signaling.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("start: signaling metrics: %w", err)
	}

	if !cfg.NoBridge {
		a.bridge, err = sfu.New(sfu.Config{
			ICEUDPPort: cfg.ICEUDPPort, ICETCPPort: cfg.ICETCPPort, PublicIPs: cfg.PublicIPs, RelayPorts: cfg.RelayPorts,
			IncludeLoopback: cfg.Dev, Logger: log, Metrics: sfuMetrics, Speaker: cfg.Speaker, FixedTopLayer: cfg.FixedTopLayer,
		})
		if err != nil {
			return nil, fmt.Errorf("start: %w", err)
		}
	}
	// Scheduled meetings are admitted by the store; dev mode also opens ad hoc ones.
	var engine bridge.Engine // stays a nil interface without a local bridge
	if a.bridge != nil {
		engine = a.bridge
	}
	a.sig = signaling.New(signaling.Config{Bridge: engine, Site: ids.SiteID(cfg.Site), Ancestry: cfg.Ancestry,
		Keys: a.keys, Logger: log, Metrics: sigMetrics, AllowedOrigins: cfg.AllowedOrigins,
		Store: cfg.Store, Tree: cfg.Tree, AdHocMeetings: cfg.Dev, Presence: cfg.Presence, Leases: cfg.Leases,
		ICEServers: a.iceServers, MaxParticipants: cfg.MaxParticipants, MaxSocketsPerAddr: cfg.MaxSocketsPerAddr,
		MaxSessionsPerToken: cfg.MaxSessionsPerToken, MaxJoinsPerTokenPerMinute: cfg.MaxJoinsPerTokenPerMinute,
		MaxViewersPerToken: cfg.MaxViewersPerToken, SlotsFrom: cfg.SlotsFrom})
	if l := a.sig.Local(); l != nil {
		lm, err := bridge.NewLimitMetrics(reg)
		if err != nil {
			_ = a.closeBridge()
			return nil, fmt.Errorf("start: bridge limit metrics: %w", err)
		}
		l.Agent().SetMaxPeers(cfg.MaxBridgePeers, lm)
	}
	if err := a.startTURN(cfg); err != nil {
		_ = a.closeBridge()
		return nil, err
	}

	a.mon = monitor.New(monitor.Config{Source: monitorSource{a.sig}, Tree: cfg.Tree, Store: cfg.Store, Hold: cfg.MonitorHold,
		Logger: log})
	if err := reg.Register(a.mon.Collector()); err != nil {
		_ = a.closeBridge() // the start error is the one to report
		return nil, fmt.Errorf("start: monitor metrics: %w", err)
	}

	monCtx, stopMon := context.WithCancel(context.WithoutCancel(ctx))
	a.stopMon = stopMon
	apiCfg := api.Config{Store: cfg.Store, Tree: cfg.Tree, Keys: a.keys, Logger: log, AdHocMeetings: cfg.Dev,
		OnTreeChange: func(t *rooms.Tree) {
			// A site added, renamed or moved through the API reaches placement and the
			// console at once, not at the next restart.
			a.sig.SetTree(t)
			a.mon.SetTree(t)
		}}
	if cfg.RecordingsDir != "" && cfg.Store != nil && a.bridge != nil {
		a.rec = newRecordings(monCtx, cfg.RecordingsDir, cfg.RecordingMaxAge, cfg.Store, a.sig, log)
		apiCfg.Recordings = a.rec
		if cfg.RecordingMaxAge > 0 {
			go a.rec.svc.RunRetention(monCtx, time.Hour)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", a.sig)
	mux.Handle(monitor.APIPrefix, a.mon.Handler(a.keys))
	mux.Handle(api.Prefix, api.New(apiCfg))
	mux.HandleFunc("/bridge", a.sig.ServeBridge)
	a.whip = whip.New(whip.Config{Signaling: a.sig, Keys: a.keys, Logger: log, Loopback: cfg.Dev})
	a.whip.Register(mux)
	if err := a.startSIP(ctx, cfg, reg); err != nil {
		stopMon()
		_ = a.closeBridge() // the start error is the one to report
		return nil, err
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("/", web.Handler())

	a.ln, err = (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		stopMon()
		a.closeSIP()
		_ = a.closeBridge() // the start error is the one to report
		return nil, fmt.Errorf("start: listen %s: %w", cfg.HTTPAddr, err)
	}
	a.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// A whole request (headers and body) within a minute; an idle keep-alive
		// connection closed after two. WebSocket upgrades clear these deadlines and set
		// their own (the join deadline, then pings).
		ReadTimeout:    time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go a.mon.Run(monCtx)
	if l := a.sig.Local(); l != nil {
		// The bridge gives its memory back once its last endpoint left (issue 11).
		go memtune.ReleaseWhenIdle(monCtx, memtune.IdlePeriod, func() bool {
			peers, _, _ := l.Agent().Load()
			return peers > 0
		}, nil)
	}
	if cfg.Store != nil {
		go recordGrades(monCtx, a.mon, cfg.Store, log)
	}
	go func() { a.served <- a.http.Serve(a.ln) }()
	a.ready.Store(true)
	log.Info("cau serving", "url", a.URL())
	return a, nil
}

// URL is the base URL of the HTTP server, e.g. http://127.0.0.1:7880.
func (a *App) URL() string { return "http://" + a.ln.Addr().String() }

// Keys are the token keys the server accepts; Keys().Sign makes valid tokens.
func (a *App) Keys() auth.Keys { return a.keys }

// Signaling is the signaling server (for tests and status).
func (a *App) Signaling() *signaling.Server { return a.sig }

// Monitor is the link-quality monitor (grades, console feed, cau_site_* metrics).
func (a *App) Monitor() *monitor.Monitor { return a.mon }

// Done reports the HTTP server's end.
func (a *App) Done() <-chan error { return a.served }

// Close stops accepting, ends every session and releases the ports.
func (a *App) Close() error {
	a.ready.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if a.rec != nil {
		a.rec.svc.StopAll(ctx) // finishes the files while the bridge still runs
	}
	a.stopMon() // ends the console streams, which Shutdown would otherwise wait for
	a.whip.Close()
	a.closeSIP()
	a.sig.Close()
	err := a.http.Shutdown(ctx)
	return errors.Join(err, a.closeBridge())
}

func (a *App) closeBridge() error {
	var errs []error
	if a.turn != nil {
		errs = append(errs, a.turn.Close())
	}
	if a.bridge != nil {
		errs = append(errs, a.bridge.Close())
	}
	return errors.Join(errs...)
}
