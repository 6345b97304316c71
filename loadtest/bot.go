package loadtest

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cau-project/cau/apiclient"
	"github.com/cau-project/cau/client"
)

// Bot states.
const (
	stateJoining int32 = iota
	stateJoined        // signaling joined; media may not have arrived yet
	stateMedia         // the first media packet arrived
	stateFailed        // the join failed (no socket, refused, or no media in time)
	stateDropped       // joined, then the server or the network ended the session
	stateLeft          // left at the end of the run
)

// bot is one simulated endpoint: a meeting-room device at a site.
type bot struct {
	idx  int
	site Site
	name string
	role string // the join token's: chair or room
	log  *slog.Logger

	state atomic.Int32
	c     *client.Client // set once joined

	mu           sync.Mutex // guards everything below
	tokenAt      time.Time  // when the token was made: the join clock starts
	joinedAt     time.Time  // the server's joined reply
	allStreamsAt time.Time  // every expected stream flowing
	streams      []*client.Stream
	pubs         []*pubRecord
	publishing   *pubRecord  // the live publication, if any
	view         map[int]int // the view sent: publisher index → tile height (lastn.go)
	err          error       // why the bot failed or dropped
}

// pubRecord is one publication by a bot.
type pubRecord struct {
	synth      *client.Synth
	start, end time.Time // end is zero while live
}

func newBot(idx int, site Site, copyN int, role string, log *slog.Logger) *bot {
	name := site.Name
	if name == "" {
		name = site.ID
	}
	if copyN > 0 {
		name = fmt.Sprintf("%s #%d", name, copyN+1)
	}
	return &bot{idx: idx, site: site, name: name, role: role, log: log.With("endpoint", idx, "site", site.ID)}
}

// join gets a join token from the API, dials and joins. It records failures on the bot.
// The join clock starts once the token is in hand, as a kiosk's does.
func (b *bot) join(ctx context.Context, r *runner) error {
	tctx, cancel := context.WithTimeout(ctx, r.cfg.JoinTimeout)
	tok, err := r.api.JoinToken(tctx, r.cfg.Meeting,
		apiclient.JoinTokenRequest{Site: b.site.ID, Name: b.name, Role: b.role})
	cancel()
	if err != nil {
		return b.fail(fmt.Errorf("join token: %w", err))
	}
	b.mu.Lock()
	b.tokenAt = time.Now()
	b.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, r.cfg.JoinTimeout)
	defer cancel()
	c, err := client.Dial(dctx, r.wsURL, tok.Token, client.Options{
		Name: b.name, Logger: r.clientLog, Loopback: r.loopback,
		OnStream: b.addStream, Slots: r.cfg.Slots,
	})
	if err != nil {
		return b.fail(fmt.Errorf("join: %w", err))
	}
	b.mu.Lock()
	b.c = c
	b.joinedAt = time.Now()
	b.mu.Unlock()
	b.state.Store(stateJoined)
	go b.watch(r)
	return nil
}

func (b *bot) fail(err error) error {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
	b.state.Store(stateFailed)
	b.log.Debug("endpoint failed", "err", err)
	return err
}

func (b *bot) addStream(s *client.Stream) {
	b.mu.Lock()
	b.streams = append(b.streams, s)
	b.mu.Unlock()
}

// watch notices a session the server ends before the run does.
func (b *bot) watch(r *runner) {
	select {
	case <-b.c.Done():
	case <-r.leaving:
		return
	}
	select {
	case <-r.leaving:
		return // ended by our own leave
	default:
	}
	b.mu.Lock()
	if b.err == nil {
		b.err = fmt.Errorf("session ended: %v", b.c.Err())
	}
	b.mu.Unlock()
	if b.state.Load() != stateFailed {
		b.state.Store(stateDropped)
	}
	r.errors.Add(1)
}

// publish starts this bot's synthetic media.
func (b *bot) publish(ctx context.Context, r *runner) error {
	if b.c == nil {
		return fmt.Errorf("endpoint %d: not joined", b.idx)
	}
	synth, err := b.c.PublishWith(ctx, r.pubOpts)
	if err != nil {
		return fmt.Errorf("endpoint %d: %w", b.idx, err)
	}
	p := &pubRecord{synth: synth, start: time.Now()}
	b.mu.Lock()
	b.pubs = append(b.pubs, p)
	b.publishing = p
	b.mu.Unlock()
	return nil
}

// unpublish stops this bot's media.
func (b *bot) unpublish(ctx context.Context) error {
	b.mu.Lock()
	p := b.publishing
	b.publishing = nil
	b.mu.Unlock()
	if p == nil || b.c == nil {
		return nil
	}
	err := b.c.Unpublish(ctx)
	b.mu.Lock()
	p.end = time.Now()
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("endpoint %d: %w", b.idx, err)
	}
	return nil
}

// firstMedia is when the first media packet arrived on any stream (zero if none yet).
func (b *bot) firstMedia() time.Time {
	var first time.Time
	for _, s := range b.streamList() {
		st := s.Stats()
		if st.Received > 0 && (first.IsZero() || st.First.Before(first)) {
			first = st.First
		}
	}
	return first
}

func (b *bot) streamList() []*client.Stream {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*client.Stream(nil), b.streams...)
}

func (b *bot) pubList() []*pubRecord {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*pubRecord(nil), b.pubs...)
}

// waitMedia waits until the first media packet arrives, the deadline passes or ctx ends.
func (b *bot) waitMedia(ctx context.Context, deadline time.Time) bool {
	return poll(ctx, deadline, func() (bool, bool) {
		if !b.firstMedia().IsZero() {
			if b.state.Load() == stateJoined {
				b.state.Store(stateMedia)
			}
			return true, true
		}
		s := b.state.Load()
		return false, s == stateFailed || s == stateDropped
	})
}

// poll checks cond every 10 ms until it is done (ok: its verdict), the deadline passes
// or ctx ends (false).
func poll(ctx context.Context, deadline time.Time, cond func() (ok, done bool)) bool {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if ok, done := cond(); ok || done {
			return ok
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// flowingStreams are the streams that have received packets.
func (b *bot) flowingStreams() []*client.Stream {
	var out []*client.Stream
	for _, s := range b.streamList() {
		if s.Stats().Received > 0 {
			out = append(out, s)
		}
	}
	return out
}

// waitStreams waits until want streams flow, recording when the last of them started.
func (b *bot) waitStreams(ctx context.Context, want int, deadline time.Time) bool {
	return poll(ctx, deadline, func() (bool, bool) {
		flowing := b.flowingStreams()
		if len(flowing) < want {
			return false, false
		}
		var last time.Time
		for _, s := range flowing {
			if f := s.Stats().First; f.After(last) {
				last = f
			}
		}
		b.mu.Lock()
		b.allStreamsAt = last
		b.mu.Unlock()
		return true, true
	})
}

// allStreams is when the last expected stream started flowing (zero if they did not all).
func (b *bot) allStreams() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.allStreamsAt
}

// leave says goodbye.
func (b *bot) leave() {
	if b.c == nil {
		return
	}
	b.c.Leave()
	if s := b.state.Load(); s == stateJoined || s == stateMedia {
		b.state.Store(stateLeft)
	}
}
