package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/config"
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
	logLevel := fs.String("log-level", "", "debug, info, warn or error")
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
		case "log-level":
			cfg.LogLevel = *logLevel
		}
	})
	if err := cfg.Validate(); err != nil {
		return err
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	log.Info("starting", "version", version, "config", cfg)
	a, err := app.Start(ctx, app.Config{
		HTTPAddr: cfg.HTTPAddr, ICEUDPPort: cfg.ICEUDPPort, ICETCPPort: cfg.ICETCPPort,
		PublicIPs: cfg.PublicIPs, Dev: cfg.Dev, TokenKey: cfg.TokenKey,
		PreviousTokenKeys: cfg.PreviousTokenKeys, AllowedOrigins: cfg.AllowedOrigins, Logger: log,
		NoBridge: name == "signal",
	})
	if err != nil {
		return err
	}
	if cfg.Dev {
		if err := printDemoLinks(stdout, a); err != nil {
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

// demoParticipants are the sample sites whose join links dev mode prints.
var demoParticipants = []struct {
	site, name string
	role       auth.Role
}{
	{"central", "Văn phòng Chính phủ", auth.RoleChair},
	{"gia-lai", "UBND tỉnh Gia Lai", auth.RoleParticipant},
	{"gia-lai-ia-grai", "UBND xã Ia Grai", auth.RoleParticipant},
}

func printDemoLinks(w io.Writer, a *app.App) error {
	const meeting = "demo"
	fmt.Fprintf(w, "\nCầu is running at %s\n\nOpen two or more of these links in separate browser tabs (meeting %q):\n\n", a.URL(), meeting)
	for _, p := range demoParticipants {
		tok, err := a.Keys().Sign(auth.Claims{Meeting: meeting, Site: p.site, Name: p.name, Role: p.role}, 24*time.Hour)
		if err != nil {
			return fmt.Errorf("demo token: %w", err)
		}
		fmt.Fprintf(w, "  %-26s %s/join/%s?token=%s\n", p.name, a.URL(), meeting, url.QueryEscape(tok))
	}
	fmt.Fprintf(w, "\nMetrics: %s/metrics   Health: %s/healthz   Stop: Ctrl-C\n\n", a.URL(), a.URL())
	return nil
}
