package app

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cau-project/cau/sipgw"
)

// SIPConfig configures the SIP gateway (package sipgw), which lets meeting rooms' hardware
// codecs dial sip:<meeting>@host. An empty Addr leaves it off.
type SIPConfig struct {
	// Addr is the ip:port SIP listens on, UDP and TCP (port 0 picks a free one).
	Addr string
	// Site is the site calls join as (sipgw.DefaultSite when empty).
	Site string
	// Allow lists the networks calls are taken from (sipgw.Config.Allow; empty: any).
	Allow []netip.Prefix
	// Optional logs a failure to listen instead of failing Start: dev mode's default
	// address may be taken by another server on the machine.
	Optional bool
}

// startSIP starts the gateway when configured. Called by Start after signaling.
func (a *App) startSIP(ctx context.Context, cfg Config, reg prometheus.Registerer) error {
	if cfg.SIP.Addr == "" {
		return nil
	}
	gw, err := sipgw.New(sipgw.Config{Signaling: a.sig, Keys: a.keys, Logger: a.log, Metrics: sipgw.NewMetrics(reg),
		Addr: cfg.SIP.Addr, Site: cfg.SIP.Site, Allow: cfg.SIP.Allow, Loopback: cfg.Dev})
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if err := gw.Start(ctx); err != nil {
		if cfg.SIP.Optional {
			a.log.Warn("sip gateway not started", "err", err)
			return nil
		}
		return fmt.Errorf("start: %w", err)
	}
	a.sip = gw
	return nil
}

// SIP is the SIP gateway, nil when off.
func (a *App) SIP() *sipgw.Gateway { return a.sip }

func (a *App) closeSIP() {
	if a.sip != nil {
		a.sip.Close()
	}
}
