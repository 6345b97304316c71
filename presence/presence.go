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
	// Resync is how often a follower re-reads who is on the other nodes (default
	// nodeTTL/2); set it before Follow.
	Resync time.Duration
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
//
// It also re-reads the meeting's presence every Resync and delivers what differs from
// what it delivered (issue 12, finding 8): a crashed node withdraws no one, so without
// this its participants stayed on every other node as ghosts; once the node's liveness
// key has expired they are delivered as left, and their entries leave the hash. The
// same re-read repairs changes lost while the subscription was down (a Redis restart,
// a network cut: pub/sub does not replay).
func (p *Redis) Follow(ctx context.Context, meeting ids.MeetingID, fn func(Event)) ([]protocol.Participant, error) {
	sub := p.rdb.Subscribe(ctx, p.channel(meeting))
	if _, err := sub.Receive(ctx); err != nil {
		_ = sub.Close()
		return nil, fmt.Errorf("presence follow %s: %w", meeting, err)
	}
	seed := make(chan []protocol.Participant, 1)
	go p.follow(ctx, sub, meeting, fn, seed)
	out, err := p.others(ctx, meeting)
	seed <- out // nil on error: the next resync delivers everyone
	if err != nil {
		return nil, err
	}
	return out, nil
}

// follow runs Follow's goroutine. known is what fn has been told (plus the first list,
// once seed brings it), for the resync to compare with.
func (p *Redis) follow(ctx context.Context, sub *goredis.PubSub, meeting ids.MeetingID, fn func(Event),
	seed <-chan []protocol.Participant) {
	defer sub.Close()
	every := p.Resync
	if every <= 0 {
		every = nodeTTL / 2
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	known := map[string]protocol.Participant{}
	touched := map[string]bool{} // changed by a message before the first list came
	seeded := false
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case first := <-seed:
			for _, pt := range first {
				if !touched[pt.ID] {
					known[pt.ID] = pt
				}
			}
			seeded, touched = true, nil
		case msg, ok := <-ch:
			if !ok {
				return
			}
			var e presenceEntry
			if json.Unmarshal([]byte(msg.Payload), &e) != nil || e.Node == p.node {
				continue
			}
			if touched != nil {
				touched[e.Participant.ID] = true
			}
			if e.Left {
				delete(known, e.Participant.ID)
			} else {
				known[e.Participant.ID] = e.Participant
			}
			fn(Event{Participant: e.Participant, Left: e.Left})
		case <-tick.C:
			if seeded {
				p.resync(ctx, meeting, known, fn)
			}
		}
	}
}

// resync re-reads the meeting's presence and delivers the differences from known.
func (p *Redis) resync(ctx context.Context, meeting ids.MeetingID, known map[string]protocol.Participant, fn func(Event)) {
	now, err := p.others(ctx, meeting)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("presence resync", "meeting", meeting, "err", err)
		}
		return
	}
	present := make(map[string]bool, len(now))
	for _, pt := range now {
		present[pt.ID] = true
		if old, ok := known[pt.ID]; !ok || !sameParticipant(old, pt) {
			known[pt.ID] = pt
			fn(Event{Participant: pt})
		}
	}
	for id, pt := range known {
		if !present[id] {
			delete(known, id)
			p.log.Info("presence: participant gone with its node", "meeting", meeting, "participant", id)
			fn(Event{Participant: pt, Left: true})
		}
	}
}

func sameParticipant(a, b protocol.Participant) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// others reads who is on the other live nodes in the meeting. Entries of nodes whose
// liveness key has expired (crashed: they withdrew no one) are removed from the hash.
func (p *Redis) others(ctx context.Context, meeting ids.MeetingID) ([]protocol.Participant, error) {
	all, err := p.rdb.HGetAll(ctx, p.hashKey(meeting)).Result()
	if err != nil {
		return nil, fmt.Errorf("presence follow %s: %w", meeting, err)
	}
	alive := map[string]bool{}
	var out []protocol.Participant
	dead := map[string]string{}
	for id, v := range all {
		var e presenceEntry
		if json.Unmarshal([]byte(v), &e) != nil || e.Node == p.node {
			continue
		}
		up, seen := alive[e.Node]
		if !seen {
			n, err := p.rdb.Exists(ctx, p.prefix+"node:"+e.Node).Result()
			if err != nil {
				return nil, fmt.Errorf("presence follow %s: %w", meeting, err)
			}
			up = n == 1
			alive[e.Node] = up
		}
		if up {
			out = append(out, e.Participant)
		} else {
			dead[id] = v
		}
	}
	for id, v := range dead {
		// Only the entry read: a live node may have announced the participant meanwhile.
		if err := delIfSame.Run(ctx, p.rdb, []string{p.hashKey(meeting)}, id, v).Err(); err != nil && err != goredis.Nil {
			p.log.Warn("presence: remove a dead node's entry", "meeting", meeting, "err", err)
		}
	}
	return out, nil
}

// delIfSame deletes a hash field if it still holds the value given.
var delIfSame = goredis.NewScript(`if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
	return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0`)
