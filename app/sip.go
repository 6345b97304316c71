package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cau-project/cau/rooms"
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
	// Accounts make calls dialled in authenticate by digest and join as their account's
	// site (sipgw.Config.Accounts; empty: no authentication).
	Accounts []sipgw.Account
	// SRTP is the media encryption policy: sipgw.SRTPOptional (the default) or
	// sipgw.SRTPMandatory.
	SRTP string
	// MaxCalls caps the calls in progress (sipgw.DefaultMaxCalls when zero).
	MaxCalls int
	// SessionExpires and MinSE tune session timers (sipgw.Config; zero: the defaults).
	SessionExpires, MinSE time.Duration
	// Optional logs a failure to listen instead of failing Start: dev mode's default
	// address may be taken by another server on the machine.
	Optional bool
	// DialPoll and DialBackoff tune auto-dial (sipgw.Config; zero: the defaults). With a
	// Store, the gateway calls the registry's rooms that have a SIP URI while a meeting
	// of their site is open.
	DialPoll, DialBackoff time.Duration
	// TLS, with a certificate, makes SIP also listen over TLS on TLSAddr (empty: Addr's
	// host, port sipgw.DefaultTLSPort); TLSClient verifies rooms called over TLS (nil:
	// the system's roots). See sipgw.Config.
	TLS, TLSClient *tls.Config
	TLSAddr        string
}

// startSIP starts the gateway when configured. Called by Start after signaling.
func (a *App) startSIP(ctx context.Context, cfg Config, reg prometheus.Registerer) error {
	if cfg.SIP.Addr == "" {
		return nil
	}
	var targets sipgw.Targets
	if cfg.Store != nil {
		targets = dialTargets(cfg.Store)
	}
	gw, err := sipgw.New(sipgw.Config{Signaling: a.sig, Keys: a.keys, Logger: a.log, Metrics: sipgw.NewMetrics(reg),
		Addr: cfg.SIP.Addr, Site: cfg.SIP.Site, Allow: cfg.SIP.Allow, Loopback: cfg.Dev, Targets: targets, Accounts: cfg.SIP.Accounts,
		DialPoll: cfg.SIP.DialPoll, DialBackoff: cfg.SIP.DialBackoff, SRTP: cfg.SIP.SRTP, MaxCalls: cfg.SIP.MaxCalls,
		SessionExpires: cfg.SIP.SessionExpires, MinSE: cfg.SIP.MinSE, TLS: cfg.SIP.TLS, TLSAddr: cfg.SIP.TLSAddr,
		TLSClient: cfg.SIP.TLSClient})
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

// dialTargets lists, for the gateway's auto-dial, the rooms with a SIP URI whose meeting
// is open (rooms.DialsAt).
func dialTargets(store rooms.Store) sipgw.Targets {
	return func(ctx context.Context, now time.Time) ([]sipgw.Target, error) {
		meetings, err := store.Meetings(ctx, now)
		if err != nil {
			return nil, fmt.Errorf("meetings: %w", err)
		}
		endpoints, err := store.Endpoints(ctx)
		if err != nil {
			return nil, fmt.Errorf("endpoints: %w", err)
		}
		dials := rooms.DialsAt(meetings, endpoints, now)
		out := make([]sipgw.Target, 0, len(dials))
		for _, d := range dials {
			e := d.Endpoint
			out = append(out, sipgw.Target{Meeting: d.Meeting, Endpoint: e.ID, Site: e.Site, Name: e.Name, URI: e.SIPURI})
		}
		return out, nil
	}
}

// SIP is the SIP gateway, nil when off.
func (a *App) SIP() *sipgw.Gateway { return a.sip }

func (a *App) closeSIP() {
	if a.sip != nil {
		a.sip.Close()
	}
}
