// Package presence shares who is connected to each meeting between signaling nodes, so
// that an endpoint on one node sees the participants on the others. Redis is the one
// implementation; signaling takes it through its Presence interface.
package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
)

// Event is a change on another node: Left is false for a join or a change.
type Event struct {
	Participant protocol.Participant
	Left        bool
}

// Redis keeps presence in Redis: a hash per meeting (participant id → node and
// participant), a channel per meeting for changes, and a key per node that expires
// when the node stops refreshing it, so a crashed node's participants are ignored.
type Redis struct {
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

// NewRedis starts presence on rdb under prefix (e.g. "cau:"). The node's liveness key is
// refreshed until ctx ends.
func NewRedis(ctx context.Context, rdb goredis.UniversalClient, prefix string, log *slog.Logger) (*Redis, error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	p := &Redis{rdb: rdb, prefix: prefix, node: hex.EncodeToString(b[:]), log: log}
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

func (p *Redis) refresh(ctx context.Context) error {
	return p.rdb.Set(ctx, p.prefix+"node:"+p.node, "1", nodeTTL).Err()
}

func (p *Redis) hashKey(meeting ids.MeetingID) string {
	return p.prefix + "presence:" + string(meeting)
}
func (p *Redis) channel(meeting ids.MeetingID) string {
	return p.prefix + "presence-ch:" + string(meeting)
}

// Announce says pt joined (or changed) on this node.
func (p *Redis) Announce(ctx context.Context, meeting ids.MeetingID, pt protocol.Participant) error {
	b, err := json.Marshal(presenceEntry{Node: p.node, Participant: pt})
	if err != nil {
		return fmt.Errorf("presence announce: %w", err)
	}
	pipe := p.rdb.TxPipeline()
	pipe.HSet(ctx, p.hashKey(meeting), pt.ID, b)
	pipe.Publish(ctx, p.channel(meeting), b)
	if _, err = pipe.Exec(ctx); err != nil {
		return fmt.Errorf("presence announce %s: %w", meeting, err)
	}
	return nil
}

// Withdraw says participant id left this node.
func (p *Redis) Withdraw(ctx context.Context, meeting ids.MeetingID, id ids.ParticipantID) error {
	b, err := json.Marshal(presenceEntry{Node: p.node, Participant: protocol.Participant{ID: string(id)}, Left: true})
	if err != nil {
		return fmt.Errorf("presence withdraw: %w", err)
	}
	pipe := p.rdb.TxPipeline()
	pipe.HDel(ctx, p.hashKey(meeting), string(id))
	pipe.Publish(ctx, p.channel(meeting), b)
	if _, err = pipe.Exec(ctx); err != nil {
		return fmt.Errorf("presence withdraw %s: %w", meeting, err)
	}
	return nil
}

// Follow delivers the other nodes' joins, changes and leaves in the meeting to fn (on one
// goroutine, in order) until ctx ends, and returns who is on the other nodes now. It
// subscribes before reading the hash, so no change falls between the two: a change may
// be both delivered and in the list.
func (p *Redis) Follow(ctx context.Context, meeting ids.MeetingID, fn func(Event)) ([]protocol.Participant, error) {
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
				fn(Event{Participant: e.Participant, Left: e.Left})
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
