// Package lease decides which signaling node owns a live meeting: one lease per meeting
// in Redis, held by one node at a time, with a fencing token that grows at every change
// of owner. The owner runs the meeting (placement, relay tree, floor); the other nodes
// forward their sessions to the address the lease names.
//
// A lease lives TTL after its last renewal. Its holder renews it every TTL/3 and must
// stop acting as owner once it cannot prove it still holds it (Held says until when): a
// node cut off from Redis stops before another can take the lease over.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cau-project/cau/ids"
)

// DefaultTTL is a lease's life after its last renewal: how long a dead owner's meetings
// wait before another node takes them over.
const DefaultTTL = 3 * time.Second

// ErrLost is returned by Renew when the lease is no longer this node's (it expired and
// another node took it, or it was released).
var ErrLost = errors.New("lease lost")

// Lease is one node's hold on a meeting, as stored in Redis.
type Lease struct {
	Meeting ids.MeetingID `json:"-"`
	// Node is the holder's id; Addr the base URL other nodes forward sessions to
	// (http://10.0.0.5:7880).
	Node string `json:"node"`
	Addr string `json:"addr"`
	// Token is the fencing token: higher for every new holder of this meeting's lease.
	Token int64 `json:"token"`

	raw string // the stored value, which Renew and Release compare
}

// Redis keeps leases under prefix (e.g. "cau:"): "<prefix>lease:<meeting>" holds the
// current lease, "<prefix>lease-fence:<meeting>" the last fencing token handed out.
type Redis struct {
	rdb    goredis.UniversalClient
	prefix string
	node   string
	addr   string
	ttl    time.Duration
}

// NewRedis returns the leases of one node, reachable by the other nodes at addr. ttl 0
// means DefaultTTL.
func NewRedis(rdb goredis.UniversalClient, prefix, addr string, ttl time.Duration) *Redis {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &Redis{rdb: rdb, prefix: prefix, node: hex.EncodeToString(b[:]), addr: addr, ttl: ttl}
}

// Node is this node's id.
func (r *Redis) Node() string { return r.node }

// TTL is a lease's life after its last renewal.
func (r *Redis) TTL() time.Duration { return r.ttl }

func (r *Redis) keys(m ids.MeetingID) []string {
	return []string{r.prefix + "lease:" + string(m), r.prefix + "lease-fence:" + string(m)}
}

// FenceKey is the key of the meeting's fencing-token counter: a store write that carries
// a lease's token (rooms.Fence) is made only while this key still holds it.
func (r *Redis) FenceKey(m ids.MeetingID) string { return r.keys(m)[1] }

// acquire takes the lease if nobody holds it (a new fencing token), renews it if this
// node holds it, and otherwise returns the holder's. Reply: {1 if ours, value}.
var acquire = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
  local cur = cjson.decode(v)
  if cur['node'] == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return {1, v}
  end
  return {0, v}
end
local t = redis.call('INCR', KEYS[2])
v = cjson.encode({node = ARGV[1], addr = ARGV[2], token = t})
redis.call('SET', KEYS[1], v, 'PX', ARGV[3])
return {1, v}
`)

// renew extends the lease only if it is still the value this node was given.
var renew = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// release deletes the lease only if it is still the value this node was given.
var release = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// Acquire takes the meeting's lease for this node, or returns the node that holds it
// (mine false). Taking a lease nobody holds hands out a new, higher fencing token.
func (r *Redis) Acquire(ctx context.Context, m ids.MeetingID) (l Lease, mine bool, err error) {
	res, err := acquire.Run(ctx, r.rdb, r.keys(m), r.node, r.addr, r.ttl.Milliseconds()).Slice()
	if err != nil {
		return Lease{}, false, fmt.Errorf("lease %s: acquire: %w", m, err)
	}
	if len(res) != 2 {
		return Lease{}, false, fmt.Errorf("lease %s: acquire: unexpected reply %v", m, res)
	}
	raw, _ := res[1].(string)
	if err := json.Unmarshal([]byte(raw), &l); err != nil {
		return Lease{}, false, fmt.Errorf("lease %s: stored value: %w", m, err)
	}
	l.Meeting, l.raw = m, raw
	return l, res[0] == int64(1), nil
}

// Renew extends l by the TTL; ErrLost if it is no longer this node's.
func (r *Redis) Renew(ctx context.Context, l Lease) error {
	n, err := renew.Run(ctx, r.rdb, r.keys(l.Meeting)[:1], l.raw, r.ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("lease %s: renew: %w", l.Meeting, err)
	}
	if n == 0 {
		return fmt.Errorf("lease %s (token %d): %w", l.Meeting, l.Token, ErrLost)
	}
	return nil
}

// Release gives l up at once (a node that stops), so another node need not wait for it
// to expire. Releasing a lease that is no longer this node's does nothing.
func (r *Redis) Release(ctx context.Context, l Lease) error {
	if err := release.Run(ctx, r.rdb, r.keys(l.Meeting)[:1], l.raw).Err(); err != nil {
		return fmt.Errorf("lease %s: release: %w", l.Meeting, err)
	}
	return nil
}

// Holder returns the meeting's lease as stored, without taking it; ok is false when
// nobody holds it.
func (r *Redis) Holder(ctx context.Context, m ids.MeetingID) (l Lease, ok bool, err error) {
	raw, err := r.rdb.Get(ctx, r.keys(m)[0]).Result()
	if errors.Is(err, goredis.Nil) {
		return Lease{}, false, nil
	}
	if err != nil {
		return Lease{}, false, fmt.Errorf("lease %s: %w", m, err)
	}
	if err := json.Unmarshal([]byte(raw), &l); err != nil {
		return Lease{}, false, fmt.Errorf("lease %s: stored value: %w", m, err)
	}
	l.Meeting, l.raw = m, raw
	return l, true, nil
}
