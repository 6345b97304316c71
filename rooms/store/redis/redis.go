// Package redis is the [rooms.Store] for several signaling nodes sharing one Redis
// (go-redis v9). Every key starts with a prefix, so several deployments (or test runs)
// can share a server. Multi-key updates are optimistic transactions (WATCH/MULTI/EXEC,
// retried on conflict); each carries its PUBLISH of the change, so every node's
// watchers see changes in commit order, normally within milliseconds.
//
// Keys, for prefix P (default "cau:"; with Redis Cluster use a hash tag such as
// "{cau}:" so that all keys share a slot):
//
//	P sites              list    Site JSON, in saved order
//	P endpoints          hash    id → Endpoint JSON
//	P meetings           hash    id → Meeting JSON
//	P meetings:end       zset    meeting id, score End in Unix ms (range index)
//	P floor:<meeting>    string  FloorState JSON
//	P attendance:<id>    list    AttendanceEvent JSON, in append order
//	P audit              zset    "<seq, 20 digits>|<AuditEntry JSON>", score Time in Unix ms
//	P audit:seq          string  counter for audit members
//	P changes            channel Change JSON for every committed change
package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/rooms/internal/notify"
)

// DefaultPrefix is used when New or Open is given an empty prefix.
const DefaultPrefix = "cau:"

// maxRetries bounds optimistic-transaction retries before ErrBusy.
const maxRetries = 100

// Store is the Redis implementation of rooms.Store. Redis itself serialises the
// commands; the fields below are set by New and only read afterwards, except closed
// (atomic) and what closeOnce guards.
type Store struct {
	c   goredis.UniversalClient
	own bool // Close closes c too (Open made it)
	p   string
	hub *notify.Hub
	ps  *goredis.PubSub
	// done is closed when the subscription loop has exited.
	done      chan struct{}
	closed    atomic.Bool
	closeOnce sync.Once
	now       func() time.Time
}

var _ rooms.Store = (*Store)(nil)

// Open connects to the Redis at url ("redis://[user:pass@]host:port/db") and returns a
// store whose keys start with prefix; Close closes the connection.
func Open(ctx context.Context, url, prefix string) (*Store, error) {
	c, err := Dial(url)
	if err != nil {
		return nil, fmt.Errorf("open redis store: %w", err)
	}
	s, err := New(ctx, c, prefix)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	s.own = true
	return s, nil
}

// Dial returns a client for a redis_url: redis://[user:password@]host:port[/db] for one
// server, or a Sentinel deployment's address with the master's name,
// redis://[user:password@]sentinel:26379?master_name=cau[&addr=sentinel2:26379...]: the
// client asks the sentinels for the master and follows its failovers. rediss:// for TLS.
// Either client honours the deadlines of the contexts it is given (honourDeadlines).
func Dial(url string) (goredis.UniversalClient, error) {
	if strings.Contains(url, "master_name=") {
		opts, err := goredis.ParseFailoverURL(url)
		if err != nil {
			return nil, fmt.Errorf("redis sentinel url: %w", err)
		}
		honourDeadlines(&opts.ContextTimeoutEnabled, &opts.DialTimeout)
		return goredis.NewFailoverClient(opts), nil
	}
	opts, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	honourDeadlines(&opts.ContextTimeoutEnabled, &opts.DialTimeout)
	return goredis.NewClient(opts), nil
}

// honourDeadlines sets the two options every client of Dial has, whichever kind.
//
// The client honours the deadlines of the contexts it is given (go-redis ignores them by
// default and waits out its own socket timeouts): a meeting lease's renewal must give up
// when its deadline passes, or a node cut off from Redis without a word (packets
// dropped, not refused) would go on acting as a meeting's owner after its lease expired.
//
// A dial is bounded by dialTimeout unless the URL sets dial_timeout.
func honourDeadlines(contextTimeout *bool, dial *time.Duration) {
	*contextTimeout = true
	if *dial == 0 {
		*dial = dialTimeout
	}
}

// dialTimeout bounds a connection attempt unless the URL sets dial_timeout: Redis is on
// the signaling nodes' own network, and a dial left waiting on a silent address holds
// one of the pool's slots (go-redis's default is 5 s).
const dialTimeout = 2 * time.Second

// New returns a store on an existing client (left open by Close). It checks the server
// answers and subscribes to the change channel before returning, so a Watch started
// afterwards misses nothing committed after it.
func New(ctx context.Context, c goredis.UniversalClient, prefix string) (*Store, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if err := c.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("open redis store: %w", err)
	}
	s := &Store{c: c, p: prefix, hub: notify.New(), done: make(chan struct{}), now: time.Now}
	s.ps = c.Subscribe(ctx, s.key("changes"))
	if _, err := s.ps.Receive(ctx); err != nil { // the subscription confirmation
		_ = s.ps.Close()
		return nil, fmt.Errorf("open redis store: subscribe: %w", err)
	}
	go s.relay()
	return s, nil
}

// relay hands every change published by any node to this node's watchers. go-redis
// reconnects and resubscribes by itself; changes published while disconnected are lost
// (Redis pub/sub keeps nothing), see rooms.Watcher.
func (s *Store) relay() {
	defer close(s.done)
	for msg := range s.ps.Channel() {
		var c rooms.Change
		if err := json.Unmarshal([]byte(msg.Payload), &c); err != nil {
			continue // not ours: someone else publishing on our channel
		}
		s.hub.Publish(c)
	}
}

// Close stops the subscription and closes every watch channel (and the client, if Open
// made it). It is safe to call twice.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.hub.Close()
		err = s.ps.Close()
		<-s.done
		if s.own {
			err = errors.Join(err, s.c.Close())
		}
	})
	if err != nil {
		return fmt.Errorf("close redis store: %w", err)
	}
	return nil
}

// Prefix is the key prefix.
func (s *Store) Prefix() string { return s.p }

// Watch implements rooms.Watcher: changes from every node sharing the Redis.
func (s *Store) Watch(ctx context.Context, meetingID string) (<-chan rooms.Change, error) {
	ch, err := s.hub.Subscribe(ctx, meetingID)
	if err != nil {
		return nil, fmt.Errorf("watch meeting %s: %w", meetingID, err)
	}
	return ch, nil
}

func (s *Store) key(parts ...string) string { return s.p + strings.Join(parts, ":") }

// open fails once the store is closed.
func (s *Store) open() error {
	if s.closed.Load() {
		return rooms.ErrClosed
	}
	return nil
}

// txn runs fn as an optimistic transaction watching keys, retrying with a short random
// pause while another client changes them first.
func (s *Store) txn(ctx context.Context, fn func(tx *goredis.Tx) error, keys ...string) error {
	if err := s.open(); err != nil {
		return err
	}
	for i := range maxRetries {
		err := s.c.Watch(ctx, fn, keys...)
		if !errors.Is(err, goredis.TxFailedErr) {
			return mapErr(err)
		}
		pause := time.Duration(rand.Int64N(int64(min(i+1, 20)) * int64(time.Millisecond)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
	return rooms.ErrBusy
}

// mapErr turns a closed client into rooms.ErrClosed.
func mapErr(err error) error {
	if errors.Is(err, goredis.ErrClosed) {
		return fmt.Errorf("%w: %w", rooms.ErrClosed, err)
	}
	return err
}

func encode(v any) (string, error) {
	data, err := json.Marshal(v) // fails only for times outside years 0–9999
	return string(data), err
}

// decodeAll decodes the JSON values a Redis read returned, one T each. It takes what the
// read's Result gives, so a failed read's error comes back as it is (for mapErr).
func decodeAll[T any](vals []string, err error) ([]T, error) {
	if err != nil {
		return nil, err
	}
	out := make([]T, len(vals))
	for i, v := range vals {
		if err := json.Unmarshal([]byte(v), &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// SaveSites implements rooms.SiteStore.
func (s *Store) SaveSites(ctx context.Context, sites []rooms.Site) error {
	if err := s.open(); err != nil {
		return fmt.Errorf("save %d sites: %w", len(sites), err)
	}
	vals := make([]any, len(sites))
	for i, site := range sites {
		v, err := encode(site)
		if err != nil {
			return fmt.Errorf("save %d sites: %w", len(sites), err)
		}
		vals[i] = v
	}
	pa, az, err := s.pendingAudit(ctx)
	if err != nil {
		return fmt.Errorf("save %d sites: %w", len(sites), err)
	}
	_, err = s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Del(ctx, s.key("sites"))
		for chunk := range slices.Chunk(vals, 1000) {
			p.RPush(ctx, s.key("sites"), chunk...)
		}
		s.queueAudit(ctx, p, az)
		return nil
	})
	if err = audited(pa, err); err != nil {
		return fmt.Errorf("save %d sites: %w", len(sites), mapErr(err))
	}
	return nil
}

// Sites implements rooms.SiteStore.
func (s *Store) Sites(ctx context.Context) ([]rooms.Site, error) {
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("load sites: %w", err)
	}
	out, err := decodeAll[rooms.Site](s.c.LRange(ctx, s.key("sites"), 0, -1).Result())
	if err != nil {
		return nil, fmt.Errorf("load sites: %w", mapErr(err))
	}
	return out, nil
}

// PutEndpoint implements rooms.EndpointStore.
func (s *Store) PutEndpoint(ctx context.Context, e rooms.Endpoint) error {
	if e.ID == "" {
		return fmt.Errorf("put endpoint: %w", rooms.ErrEmptyID)
	}
	if err := s.open(); err != nil {
		return fmt.Errorf("put endpoint %s: %w", e.ID, err)
	}
	v, err := encode(e)
	if err != nil {
		return fmt.Errorf("put endpoint %s: %w", e.ID, err)
	}
	pa, az, err := s.pendingAudit(ctx)
	if err == nil {
		_, err = s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.HSet(ctx, s.key("endpoints"), e.ID, v)
			s.queueAudit(ctx, p, az)
			return nil
		})
		err = audited(pa, err)
	}
	if err != nil {
		return fmt.Errorf("put endpoint %s: %w", e.ID, mapErr(err))
	}
	return nil
}

// Endpoint implements rooms.EndpointStore.
func (s *Store) Endpoint(ctx context.Context, id string) (rooms.Endpoint, error) {
	var e rooms.Endpoint
	if err := s.open(); err != nil {
		return e, fmt.Errorf("endpoint %s: %w", id, err)
	}
	v, err := s.c.HGet(ctx, s.key("endpoints"), id).Result()
	if errors.Is(err, goredis.Nil) {
		err = rooms.ErrNotFound
	}
	if err == nil {
		err = json.Unmarshal([]byte(v), &e)
	}
	if err != nil {
		return rooms.Endpoint{}, fmt.Errorf("endpoint %s: %w", id, mapErr(err))
	}
	return e, nil
}

// Endpoints implements rooms.EndpointStore.
func (s *Store) Endpoints(ctx context.Context) ([]rooms.Endpoint, error) {
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	out, err := decodeAll[rooms.Endpoint](s.c.HVals(ctx, s.key("endpoints")).Result())
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", mapErr(err))
	}
	slices.SortFunc(out, func(a, b rooms.Endpoint) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// DeleteEndpoint implements rooms.EndpointStore.
func (s *Store) DeleteEndpoint(ctx context.Context, id string) error {
	if err := s.open(); err != nil {
		return fmt.Errorf("delete endpoint %s: %w", id, err)
	}
	pa, az, err := s.pendingAudit(ctx)
	if err == nil {
		// Watched, so the entry is written only with a delete that happens.
		err = s.txn(ctx, func(tx *goredis.Tx) error {
			exists, err := tx.HExists(ctx, s.key("endpoints"), id).Result()
			if err != nil {
				return err
			}
			if !exists {
				return rooms.ErrNotFound
			}
			_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				p.HDel(ctx, s.key("endpoints"), id)
				s.queueAudit(ctx, p, az)
				return nil
			})
			return err
		}, s.key("endpoints"))
		err = audited(pa, err)
	}
	if err != nil {
		return fmt.Errorf("delete endpoint %s: %w", id, mapErr(err))
	}
	return nil
}

// AppendAudit implements rooms.AuditStore.
func (s *Store) AppendAudit(ctx context.Context, e rooms.AuditEntry) error {
	if err := s.open(); err != nil {
		return fmt.Errorf("append audit entry: %w", err)
	}
	z, err := s.auditMember(ctx, e)
	switch _, fence := rooms.FenceOf(ctx); {
	case err != nil:
	case fence: // a meeting owner's entry (issue 16): only while it holds the lease
		err = s.txn(ctx, func(tx *goredis.Tx) error {
			if err := checkFence(ctx, tx); err != nil {
				return err
			}
			_, err := tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				p.ZAdd(ctx, s.key("audit"), z)
				return nil
			})
			return err
		}, fenced(ctx)...)
	default:
		err = s.c.ZAdd(ctx, s.key("audit"), z).Err()
	}
	if err != nil {
		return fmt.Errorf("append audit entry: %w", mapErr(err))
	}
	return nil
}

// auditMember encodes e as a member of the audit sorted set; its sequence number (taken
// now, so a retried transaction keeps it) orders entries of the same millisecond.
func (s *Store) auditMember(ctx context.Context, e rooms.AuditEntry) (goredis.Z, error) {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	e.Time = e.Time.UTC()
	data, err := encode(e)
	if err != nil {
		return goredis.Z{}, err
	}
	seq, err := s.c.Incr(ctx, s.key("audit", "seq")).Result()
	if err != nil {
		return goredis.Z{}, err
	}
	return goredis.Z{Score: float64(e.Time.UnixMilli()), Member: fmt.Sprintf("%020d|%s", seq, data)}, nil
}

// pendingAudit prepares the audit entry ctx carries (rooms.WithAudit) for the MULTI
// block of the change it records; nil, nil without one.
func (s *Store) pendingAudit(ctx context.Context) (*rooms.PendingAudit, *goredis.Z, error) {
	pa := rooms.PendingAuditOf(ctx)
	if pa == nil {
		return nil, nil, nil
	}
	z, err := s.auditMember(ctx, pa.Entry)
	if err != nil {
		return nil, nil, fmt.Errorf("audit entry: %w", mapErr(err))
	}
	return pa, &z, nil
}

// queueAudit adds the prepared entry to a MULTI block.
func (s *Store) queueAudit(ctx context.Context, p goredis.Pipeliner, z *goredis.Z) {
	if z != nil {
		p.ZAdd(ctx, s.key("audit"), *z)
	}
}

// audited marks the entry written once the transaction committed.
func audited(pa *rooms.PendingAudit, err error) error {
	if err == nil && pa != nil {
		pa.MarkWritten()
	}
	return err
}

// Audit implements rooms.AuditStore. Scores are milliseconds; the exact bounds are
// applied after decoding. With a limit it pages backwards from the end of the range.
func (s *Store) Audit(ctx context.Context, q rooms.AuditQuery) ([]rooms.AuditEntry, error) {
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	lo, hi := "-inf", "+inf"
	if !q.Since.IsZero() {
		lo = strconv.FormatInt(q.Since.UnixMilli(), 10)
	}
	if !q.Until.IsZero() {
		hi = strconv.FormatInt(q.Until.UnixMilli(), 10)
	}
	var out []rooms.AuditEntry
	take := func(members []string) error {
		for _, m := range members {
			_, data, ok := strings.Cut(m, "|")
			if !ok {
				return fmt.Errorf("bad audit member %q", m)
			}
			var e rooms.AuditEntry
			if err := json.Unmarshal([]byte(data), &e); err != nil {
				return err
			}
			if q.Match(e) && (q.Limit <= 0 || len(out) < q.Limit) {
				out = append(out, e)
			}
		}
		return nil
	}
	var err error
	if q.Limit <= 0 {
		var members []string
		if members, err = s.c.ZRangeByScore(ctx, s.key("audit"), &goredis.ZRangeBy{Min: lo, Max: hi}).Result(); err == nil {
			err = take(members)
		}
	} else {
		page := int64(max(q.Limit, 100))
		for off := int64(0); len(out) < q.Limit; off += page {
			var members []string
			members, err = s.c.ZRevRangeByScore(ctx, s.key("audit"), &goredis.ZRangeBy{Min: lo, Max: hi, Offset: off, Count: page}).Result()
			if err != nil || len(members) == 0 {
				break
			}
			if err = take(members); err != nil {
				break
			}
		}
		slices.Reverse(out)
	}
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", mapErr(err))
	}
	slices.SortStableFunc(out, func(a, b rooms.AuditEntry) int { return a.Time.Compare(b.Time) })
	return out, nil
}
