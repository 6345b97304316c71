package signaling

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/cau-project/cau/protocol"
	goredis "github.com/redis/go-redis/v9"
)

// Presence shares who is connected to each meeting between signaling nodes, so an
// endpoint on one node sees the participants on the others. Nil means one node.
type Presence interface {
	// Announce says p joined (or changed) on this node.
	Announce(ctx context.Context, meeting string, p protocol.Participant) error
	// Withdraw says participant id left this node.
	Withdraw(ctx context.Context, meeting, id string) error
	// Follow delivers the other nodes' joins, changes and leaves in the meeting until ctx
	// ends, and returns who is on the other nodes now.
	Follow(ctx context.Context, meeting string, fn func(PresenceEvent)) ([]protocol.Participant, error)
}

// PresenceEvent is a change on another node: Left is false for a join or a change.
type PresenceEvent struct {
	Participant protocol.Participant
	Left        bool
}

// RedisPresence keeps presence in Redis: a hash per meeting (participant id → node and
// participant), a channel per meeting for changes, and a key per node that expires
// when the node stops refreshing it, so a crashed node's participants are ignored.
type RedisPresence struct {
	rdb    goredis.UniversalClient
	prefix string
	node   string
	log    *slog.Logger
}

type presenceEntry struct {
	Node        string               `json:"node"`
	Participant protocol.Participant `json:"participant"`
	Left        bool                 `json:"left,omitempty"`
}

// nodeTTL is how long a node's participants outlive its last refresh.
const nodeTTL = 10 * time.Second

// NewRedisPresence starts presence on rdb under prefix (e.g. "cau:"). The node's
// liveness key is refreshed until ctx ends.
func NewRedisPresence(ctx context.Context, rdb goredis.UniversalClient, prefix string, log *slog.Logger) (*RedisPresence, error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	p := &RedisPresence{rdb: rdb, prefix: prefix, node: hex.EncodeToString(b[:]), log: log}
	if err := p.refresh(ctx); err != nil {
		return nil, fmt.Errorf("presence: %w", err)
	}
	go func() {
		t := time.NewTicker(nodeTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := p.refresh(ctx); err != nil && ctx.Err() == nil {
					log.Warn("presence refresh", "err", err)
				}
			}
		}
	}()
	return p, nil
}

func (p *RedisPresence) refresh(ctx context.Context) error {
	return p.rdb.Set(ctx, p.prefix+"node:"+p.node, "1", nodeTTL).Err()
}

func (p *RedisPresence) hashKey(meeting string) string { return p.prefix + "presence:" + meeting }
func (p *RedisPresence) channel(meeting string) string { return p.prefix + "presence-ch:" + meeting }

// Announce implements Presence.
func (p *RedisPresence) Announce(ctx context.Context, meeting string, pt protocol.Participant) error {
	b, err := json.Marshal(presenceEntry{Node: p.node, Participant: pt})
	if err != nil {
		return err
	}
	pipe := p.rdb.TxPipeline()
	pipe.HSet(ctx, p.hashKey(meeting), pt.ID, b)
	pipe.Publish(ctx, p.channel(meeting), b)
	_, err = pipe.Exec(ctx)
	return err
}

// Withdraw implements Presence.
func (p *RedisPresence) Withdraw(ctx context.Context, meeting, id string) error {
	b, err := json.Marshal(presenceEntry{Node: p.node, Participant: protocol.Participant{ID: id}, Left: true})
	if err != nil {
		return err
	}
	pipe := p.rdb.TxPipeline()
	pipe.HDel(ctx, p.hashKey(meeting), id)
	pipe.Publish(ctx, p.channel(meeting), b)
	_, err = pipe.Exec(ctx)
	return err
}

// Follow implements Presence. It subscribes before reading the hash, so no change falls
// between the two.
func (p *RedisPresence) Follow(ctx context.Context, meeting string, fn func(PresenceEvent)) ([]protocol.Participant, error) {
	sub := p.rdb.Subscribe(ctx, p.channel(meeting))
	if _, err := sub.Receive(ctx); err != nil {
		_ = sub.Close()
		return nil, fmt.Errorf("presence follow %s: %w", meeting, err)
	}
	go func() {
		defer sub.Close()
		ch := sub.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case msg, ok := <-ch:
				if !ok {
					return
				}
				var e presenceEntry
				if json.Unmarshal([]byte(msg.Payload), &e) != nil || e.Node == p.node {
					continue
				}
				fn(PresenceEvent{Participant: e.Participant, Left: e.Left})
			}
		}
	}()
	all, err := p.rdb.HGetAll(ctx, p.hashKey(meeting)).Result()
	if err != nil {
		return nil, fmt.Errorf("presence follow %s: %w", meeting, err)
	}
	alive := map[string]bool{}
	var out []protocol.Participant
	for _, v := range all {
		var e presenceEntry
		if json.Unmarshal([]byte(v), &e) != nil || e.Node == p.node {
			continue
		}
		up, seen := alive[e.Node]
		if !seen {
			n, err := p.rdb.Exists(ctx, p.prefix+"node:"+e.Node).Result()
			up = err == nil && n == 1
			alive[e.Node] = up
		}
		if up {
			out = append(out, e.Participant)
		}
	}
	return out, nil
}
