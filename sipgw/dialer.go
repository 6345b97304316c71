package sipgw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Auto-dial: as an MCU's scheduler does, the gateway calls the rooms of a meeting whose
// test window is open (auto-answer on the codec makes the room join unattended), calls
// again when a call drops or fails, with backoff, and hangs up when the meeting ends.
// Which rooms to call comes from Config.Targets (the app lists the registry's room
// endpoints that have a SIP URI, for the meetings open now); the gateway polls it.

// Target is a room the gateway keeps in a meeting by calling it.
type Target struct {
	Meeting string
	// Endpoint is the room's id in the registry: the call joins as that endpoint, so the
	// roll call, grade and console entry are the room's.
	Endpoint string
	Site     string
	Name     string
	// URI is what is dialled: sip:user@host[:port][;transport=tcp|tls], or sips:… (TLS).
	URI string
}

func (t Target) key() string { return t.Meeting + "\x00" + t.Endpoint }

// Targets lists the rooms that should be in their meetings at now.
type Targets func(ctx context.Context, now time.Time) ([]Target, error)

// Defaults of the dialer (Config.DialPoll, DialBackoff, DialBackoffMax).
const (
	DefaultDialPoll       = 5 * time.Second
	DefaultDialBackoff    = 2 * time.Second
	DefaultDialBackoffMax = time.Minute
	// ringTimeout bounds how long a room may ring before the attempt counts as failed.
	ringTimeout = 45 * time.Second
)

// dialer keeps one goroutine per target (keep), started and stopped by the poll loop.
type dialer struct {
	g    *Gateway
	mu   sync.Mutex                    // guards keep
	keep map[string]context.CancelFunc // by Target.key
	wg   sync.WaitGroup
}

// run polls the targets until ctx ends, then hangs up every dialled call.
func (d *dialer) run(ctx context.Context) {
	defer d.wg.Done()
	poll := time.NewTicker(d.g.cfg.DialPoll)
	defer poll.Stop()
	for {
		d.sync(ctx)
		select {
		case <-ctx.Done():
			d.mu.Lock()
			for _, stop := range d.keep {
				stop()
			}
			d.mu.Unlock()
			return
		case <-poll.C:
		}
	}
}

// sync starts keeping the targets listed now and stops keeping the others.
func (d *dialer) sync(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	targets, err := d.g.cfg.Targets(lctx, time.Now())
	cancel()
	if err != nil {
		d.g.log.Warn("sip auto-dial: listing the rooms to call", "err", err)
		return // keep what is kept: a store hiccup must not hang up every room
	}
	want := make(map[string]Target, len(targets))
	for _, t := range targets {
		want[t.key()] = t
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, stop := range d.keep {
		if _, ok := want[k]; !ok {
			stop()
			delete(d.keep, k)
		}
	}
	for k, t := range want {
		if _, ok := d.keep[k]; ok {
			continue
		}
		kctx, stop := context.WithCancel(ctx)
		d.keep[k] = stop
		d.wg.Add(1)
		go d.keepCalling(kctx, t)
	}
}

// keepCalling calls t until ctx ends (the meeting is over, or the gateway closes),
// again after each failure or drop, waiting DialBackoff doubled per failure in a row
// up to DialBackoffMax; then it hangs up.
func (d *dialer) keepCalling(ctx context.Context, t Target) {
	defer d.wg.Done()
	log := d.g.log.With("meeting", t.Meeting, "endpoint", t.Endpoint, "uri", t.URI)
	wait := d.g.cfg.DialBackoff
	for ctx.Err() == nil {
		c, err := d.g.dial(ctx, t, log)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Info("sip auto-dial: the call failed; calling again later", "err", err, "in", wait)
		} else {
			wait = d.g.cfg.DialBackoff
			select {
			case <-ctx.Done():
				c.hangup("the meeting is over")
				return
			case <-c.done:
				log.Info("sip auto-dial: the call ended; calling again later", "in", wait)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, d.g.cfg.DialBackoffMax)
	}
}

// dial calls t's room with the gateway's offer and, once it answers, joins the meeting
// as that room: it returns the call started.
func (g *Gateway) dial(ctx context.Context, t Target, log *slog.Logger) (*call, error) {
	var uri sip.Uri
	if err := sip.ParseUri(t.URI, &uri); err != nil {
		g.m.Dials.WithLabelValues(outcomeFailed).Inc()
		return nil, fmt.Errorf("dial %q: %w", t.URI, err)
	}
	transport, ok := uriTransport(uri)
	if !ok {
		g.m.Dials.WithLabelValues(outcomeFailed).Inc()
		return nil, fmt.Errorf("dial %q: transport %q (want udp, tcp or tls)", t.URI, transport)
	}
	c := g.newCall("", t.Meeting, t.Name, t.Site, t.Endpoint, log)
	c.source, c.peer, c.transport = uri.HostPort(), uri, strings.ToUpper(transport)
	c.contact = g.contact(transport)
	fail := func(outcome string, err error) (*call, error) {
		g.m.Dials.WithLabelValues(outcome).Inc()
		c.close("dial failed")
		return nil, err
	}
	if err := c.openLegs(); err != nil {
		return fail(outcomeFailed, err)
	}
	offer := buildOffer(g.mediaIP, c.sdpID, c.audio.offer(g.srtpRequired()), c.video.offer(g.srtpRequired()), true)
	c.setLocalSDP(offer)
	req := sip.NewRequest(sip.INVITE, uri)
	req.SetTransport(strings.ToUpper(transport))
	from := &sip.FromHeader{DisplayName: "Cầu", Address: sip.Uri{Scheme: "sip", User: "cau", Host: g.addr.Addr().String()},
		Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.AppendHeader(sip.NewHeader("Allow", allowed))
	req.SetBody(offer)
	ua := &sipgo.DialogUA{Client: g.client, ContactHDR: c.contact}
	rctx, cancel := context.WithTimeout(ctx, ringTimeout)
	defer cancel()
	dlg, err := ua.WriteInvite(rctx, req)
	if err != nil {
		return fail(outcomeFailed, fmt.Errorf("invite: %w", err))
	}
	c.dlg = dlg
	c.id = callIDOf(dlg.InviteRequest)
	if err := dlg.WaitAnswer(rctx, sipgo.AnswerOptions{}); err != nil {
		var refused *sipgo.ErrDialogResponse
		if errors.As(err, &refused) {
			return fail(outcomeRejected, fmt.Errorf("the room answered %d %s", refused.Res.StatusCode, refused.Res.Reason))
		}
		return fail(outcomeFailed, fmt.Errorf("no answer: %w", err))
	}
	res := dlg.InviteResponse
	if ct := res.Contact(); ct != nil {
		c.peer = ct.Address
	}
	// ACK at once (the room repeats its 200 until it comes), then read its answer.
	if err := dlg.Ack(rctx); err != nil {
		return fail(outcomeFailed, fmt.Errorf("ack: %w", err))
	}
	answer, err := parseDescription(res.Body(), g.srtpRequired())
	if err == nil {
		err = c.setRemote(answer, true)
	}
	if err == nil {
		c.setRate(answer)
	}
	if err != nil {
		c.hangup("unusable answer")
		g.m.Dials.WithLabelValues(outcomeRejected).Inc()
		return nil, fmt.Errorf("the room's answer: %w", err)
	}
	g.mu.Lock()
	closed := g.closed
	if !closed {
		g.calls[c.id] = c
	}
	g.mu.Unlock()
	if closed {
		c.hangup("gateway closing")
		return nil, errors.New("gateway closing")
	}
	jctx, jcancel := context.WithTimeout(ctx, setupTimeout)
	defer jcancel()
	if _, reason, err := c.join(jctx); err != nil {
		c.hangup("could not join the meeting: " + reason)
		g.m.Dials.WithLabelValues(outcomeFailed).Inc()
		return nil, fmt.Errorf("join: %w", err)
	}
	g.m.Dials.WithLabelValues(outcomeAnswered).Inc()
	log.Info("sip auto-dial: the room answered", "call_id", c.id)
	c.start()
	return c, nil
}
