package loadtest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cau-project/cau/apiclient"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/cputime"
	"github.com/cau-project/cau/internal/tick"
)

// runner is one run's state.
type runner struct {
	cfg        Config
	wsURL      string
	metricsURL string
	loopback   bool
	clientLog  *slog.Logger
	pubOpts    client.PublishOptions
	hc         *http.Client
	api        *apiclient.Client // mints the join tokens
	bots       []*bot
	started    time.Time

	phase     atomic.Value // string: ramp, settle, measure, leave
	leaving   chan struct{}
	errors    atomic.Int64 // publish/rotation errors and dropped sessions
	rotations atomic.Int64
	lastn     *lastnRun // nil without Last-N accounting (lastn.go)

	// initialPubsDone is closed when every initial publisher has joined and published, or
	// failed to.
	initialPubsDone chan struct{}
}

// Run joins cfg.Endpoints simulated endpoints to the meeting at cfg.Ramp per second,
// publishes from cfg.Publishers of them, holds the load for cfg.Duration once every join
// has settled, measures, leaves, and returns the report. The error is non-nil only when
// the run could not be carried out (bad config, cancelled); thresholds crossed are in the
// report (Report.Pass and Report.Violations).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	ws, metrics, _ := serverURLs(cfg.URL)
	ppf, size := videoShape(cfg.VideoKbps, cfg.FPS)
	r := &runner{
		cfg: cfg, wsURL: ws, metricsURL: metrics, loopback: isLoopback(cfg.URL),
		clientLog: slog.New(levelFloor{cfg.Logger.Handler(), slog.LevelWarn}),
		pubOpts: client.PublishOptions{FPS: cfg.FPS, PacketsPerFrame: ppf, PayloadBytes: size,
			NoAudio: cfg.Media == MediaVideo, NoVideo: cfg.Media == MediaAudio, Simulcast: cfg.Simulcast,
			Levels: cfg.Talkers > 0},
		hc:              &http.Client{Timeout: 10 * time.Second},
		leaving:         make(chan struct{}),
		initialPubsDone: make(chan struct{}),
	}
	r.api = apiclient.New(cfg.URL, cfg.Token, r.hc)
	r.phase.Store("ramp")
	for i := 0; i < cfg.Endpoints; i++ {
		role := "room"
		if i == 0 {
			role = "chair"
		}
		r.bots = append(r.bots, newBot(i, cfg.Sites[i%len(cfg.Sites)], i/len(cfg.Sites), role, cfg.Logger))
	}
	r.lastn = newLastN(r)

	rep := newReport(cfg)
	base, err := scrapeMetrics(ctx, r.hc, r.metricsURL)
	if err != nil {
		cfg.Logger.Warn("server metrics unavailable; CPU and memory figures will be missing", "err", err)
		rep.Server.Error = err.Error()
	}
	r.started = time.Now()
	rep.Started = r.started

	progressDone := make(chan struct{})
	progressCtx, stopProgress := context.WithCancel(ctx)
	go func() { defer close(progressDone); r.progress(progressCtx) }()
	defer func() { stopProgress(); <-progressDone }()

	r.ramp(ctx)
	if err := ctx.Err(); err != nil {
		r.leaveAll()
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	rep.RampSeconds = time.Since(r.started).Seconds()
	if r.lastn != nil && len(r.lastn.talkers) > 0 {
		r.phase.Store("warm-up")
		r.lastn.warmUp(ctx)
	}

	r.phase.Store("measure")
	startSnap := r.snapshot(ctx)
	if r.anyConnected() {
		r.hold(ctx)
	} else {
		cfg.Logger.Warn("no endpoint joined; not holding the load")
	}
	endSnap := r.snapshot(ctx)
	cancelled := ctx.Err()

	r.phase.Store("leave")
	r.leaveAll()
	stopProgress()
	<-progressDone
	r.finalProgress()

	rep.fill(r, base, startSnap, endSnap)
	if cancelled != nil {
		return rep, fmt.Errorf("loadtest: interrupted: %w", cancelled)
	}
	return rep, nil
}

// ramp starts the joins at the configured rate and returns when each has settled: media
// arrived, or it failed.
func (r *runner) ramp(ctx context.Context) {
	interval := time.Duration(float64(time.Second) / r.cfg.Ramp)
	var wg, pubWG sync.WaitGroup
	pubWG.Add(r.cfg.Publishers)
	go func() { pubWG.Wait(); close(r.initialPubsDone) }()
	next := time.Now()
	launched := 0
	for i, b := range r.bots {
		if i > 0 {
			next = next.Add(interval)
			if !tick.Until(ctx, next) {
				break
			}
		}
		publisher := i < r.cfg.Publishers
		wg.Add(1)
		launched++
		go func() {
			defer wg.Done()
			r.joinOne(ctx, b, publisher, &pubWG)
		}()
	}
	// Publishers not started because ctx ended must not block the wait in joinOne.
	for i := launched; i < r.cfg.Publishers; i++ {
		pubWG.Done()
	}
	r.phase.Store("settle")
	wg.Wait()
}

// tokenTime is when the bot's join clock started (zero before it tried).
func (b *bot) tokenTime() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tokenAt
}

// joinOne joins one endpoint, publishes if it is an initial publisher, and waits for its
// first media packet.
func (r *runner) joinOne(ctx context.Context, b *bot, publisher bool, pubWG *sync.WaitGroup) {
	err := b.join(ctx, r)
	if err == nil && publisher {
		pctx, cancel := context.WithTimeout(ctx, r.cfg.JoinTimeout)
		if err = b.publish(pctx, r); err != nil {
			_ = b.fail(fmt.Errorf("publish: %w", err))
		}
		cancel()
	}
	if publisher {
		pubWG.Done()
	}
	if err != nil {
		return
	}
	// Media can come only from another publisher; wait for the initial ones to be up.
	select {
	case <-r.initialPubsDone:
	case <-ctx.Done():
		return
	}
	b.sendView(r)
	from := r.mediaStart(b)
	if from.IsZero() {
		return // nobody else publishes: there is no media to wait for
	}
	if r.lastn != nil && r.expectedStreams(b) == 0 {
		return // Last-N may forward nothing before anyone talks: only the pinned are due
	}
	if !b.waitMedia(ctx, from.Add(r.cfg.JoinTimeout)) {
		if ctx.Err() == nil {
			_ = b.fail(fmt.Errorf("no media within %v of joining", r.cfg.JoinTimeout))
		}
		return
	}
	// The join has settled when every published track flows (video waits for a keyframe).
	if want := r.expectedStreams(b); !b.waitStreams(ctx, want, r.allMediaStart(b).Add(r.cfg.JoinTimeout)) && ctx.Err() == nil {
		b.log.Warn("not every stream arrived in time", "want", want, "got", len(b.flowingStreams()))
	}
	b.log.Debug("joined", "first_media", b.firstMedia().Sub(from), "all_streams", b.allStreams().Sub(r.allMediaStart(b)))
}

// mediaStart is when b could first have received media: its token time, or the first
// other publisher's publication if that came later. Zero when no other endpoint published.
func (r *runner) mediaStart(b *bot) time.Time { return r.publishedBy(b, false) }

// allMediaStart is when b could have received every initial publication: its token time,
// or the last other initial publisher's publication if that came later.
func (r *runner) allMediaStart(b *bot) time.Time { return r.publishedBy(b, true) }

func (r *runner) publishedBy(b *bot, last bool) time.Time {
	var at time.Time
	for _, p := range r.bots[:r.cfg.Publishers] {
		if p == b {
			continue
		}
		pubs := p.pubList()
		if len(pubs) == 0 {
			continue
		}
		if t := pubs[0].start; at.IsZero() || (last && t.After(at)) || (!last && t.Before(at)) {
			at = t
		}
	}
	if at.IsZero() {
		return at
	}
	if t := b.tokenTime(); t.After(at) {
		return t
	}
	return at
}

// expectedStreams is how many tracks b should receive from the initial publishers: all of
// them, or under Last-N accounting those of the chair's site, pinned (the rest depend on
// who talks).
func (r *runner) expectedStreams(b *bot) int {
	n := 0
	for _, p := range r.bots[:r.cfg.Publishers] {
		if p != b && len(p.pubList()) > 0 && (r.lastn == nil || p.site.ID == r.chairSite()) {
			n++
		}
	}
	if r.cfg.Media == MediaBoth {
		n *= 2
	}
	return n
}

// hold keeps the load for the configured duration, moving the floor in rotate mode.
func (r *runner) hold(ctx context.Context) {
	end := time.Now().Add(r.cfg.Duration)
	if r.lastn != nil {
		done := make(chan struct{})
		go func() { defer close(done); r.lastn.run(ctx, end) }()
		defer func() { <-done }()
	}
	if r.cfg.Mode != ModeRotate {
		tick.Until(ctx, end)
		return
	}
	speakers := []*bot{}
	for _, b := range r.bots[1:r.cfg.Publishers] {
		if b.isPublishing() {
			speakers = append(speakers, b)
		}
	}
	next := r.cfg.Publishers % len(r.bots)
	for {
		at := time.Now().Add(r.cfg.RotateEvery)
		if at.After(end) {
			tick.Until(ctx, end)
			return
		}
		if !tick.Until(ctx, at) {
			return
		}
		cand, idx := r.nextSpeaker(next)
		if cand == nil {
			continue
		}
		next = idx + 1
		pctx, cancel := context.WithTimeout(ctx, r.cfg.JoinTimeout)
		if err := cand.publish(pctx, r); err != nil {
			r.errors.Add(1)
			r.cfg.Logger.Warn("take the floor", "err", err)
		} else {
			speakers = append(speakers, cand)
		}
		if len(speakers) > r.cfg.Publishers-1 {
			if err := speakers[0].unpublish(pctx); err != nil {
				r.errors.Add(1)
				r.cfg.Logger.Warn("leave the floor", "err", err)
			}
			speakers = speakers[1:]
		}
		cancel()
		r.rotations.Add(1)
	}
}

// nextSpeaker finds, from index from on (wrapping, never the chair), a connected endpoint
// that is not publishing.
func (r *runner) nextSpeaker(from int) (*bot, int) {
	n := len(r.bots)
	for k := 0; k < n; k++ {
		i := (from + k) % n
		if i == 0 {
			continue
		}
		b := r.bots[i]
		if s := b.state.Load(); (s == stateJoined || s == stateMedia) && !b.isPublishing() {
			return b, i
		}
	}
	return nil, 0
}

// anyConnected reports whether some endpoint is in the meeting.
func (r *runner) anyConnected() bool {
	for _, b := range r.bots {
		if s := b.state.Load(); s == stateJoined || s == stateMedia {
			return true
		}
	}
	return false
}

func (b *bot) isPublishing() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.publishing != nil
}

// leaveAll says goodbye from every endpoint, a few at a time.
func (r *runner) leaveAll() {
	close(r.leaving)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for _, b := range r.bots {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			b.leave()
		}()
	}
	wg.Wait()
}

// snapshot is the state of every stream and publication at one moment.
type snapshot struct {
	at        time.Time
	streams   map[*client.Stream]streamSnap
	sent      map[*client.Synth]client.SynthCounts
	server    serverSample
	serverErr error
	cpu       time.Duration // this process's CPU time
}

type streamSnap struct {
	st     client.StreamStats
	lat    client.Histogram
	layers [3]int64 // video packets per simulcast layer (layers.go)
}

func (r *runner) snapshot(ctx context.Context) *snapshot {
	s := &snapshot{at: time.Now(), streams: map[*client.Stream]streamSnap{}, sent: map[*client.Synth]client.SynthCounts{},
		cpu: cputime.Process()}
	for _, b := range r.bots {
		for _, st := range b.streamList() {
			s.streams[st] = streamSnap{st: st.Stats(), lat: st.Latency(), layers: st.LayerPackets()}
		}
		for _, p := range b.pubList() {
			s.sent[p.synth] = p.synth.Sent()
		}
	}
	s.server, s.serverErr = scrapeMetrics(context.WithoutCancel(ctx), r.hc, r.metricsURL)
	return s
}

// levelFloor drops records below a level (the clients' logs are noisy at Info).
type levelFloor struct {
	slog.Handler
	min slog.Level
}

// Enabled implements slog.Handler.
func (h levelFloor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

// WithAttrs implements slog.Handler.
func (h levelFloor) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFloor{h.Handler.WithAttrs(a), h.min}
}

// WithGroup implements slog.Handler.
func (h levelFloor) WithGroup(n string) slog.Handler {
	return levelFloor{h.Handler.WithGroup(n), h.min}
}
