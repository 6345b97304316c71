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
	"github.com/cau-project/cau/internal/tick"
	"github.com/cau-project/cau/protocol"
)

// Event is a change on another node: Left is false for a join or a change.
type Event struct {
	Participant protocol.Participant
	// Endpoint is the participant's roll-call endpoint (a room's endpoint id, or the
	// participant id), as its node announced it.
	Endpoint string
	Left     bool
	// Lost: the participant left with its node, which crashed and wrote nothing; this
	// follower removed its entry, so it alone is told it was lost (and records that in
	// the roll call). At is then when its node was last known alive: the later of its
	// last announcement of the participant and a liveness TTL before the loss was seen.
	Lost bool
	At   time.Time
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
	Endpoint    string               `json:"endpoint,omitempty"`
	Left        bool                 `json:"left,omitempty"`
	// At is when the node announced the entry: it was alive then (after the endpoint's
	// roll-call connect).
	At time.Time `json:"at,omitzero"`
}

func (e presenceEntry) event() Event {
	return Event{Participant: e.Participant, Endpoint: e.Endpoint, Left: e.Left}
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
	go tick.Every(ctx.Done(), nodeTTL/3, func(time.Time) {
		if err := p.refresh(ctx); err != nil && ctx.Err() == nil {
			log.Warn("presence refresh", "err", err)
		}
	})
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

// Announce says pt joined (or changed) on this node; endpoint is its roll-call endpoint,
// so that another node can record it disconnected if this node crashes.
func (p *Redis) Announce(ctx context.Context, meeting ids.MeetingID, pt protocol.Participant, endpoint string) error {
	b, err := json.Marshal(presenceEntry{Node: p.node, Participant: pt, Endpoint: endpoint, At: time.Now().UTC()})
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
// key has expired they are delivered as left, and their entries leave the hash (the
// follower that removes an entry delivers it as Lost, so one node records it in the roll
// call). The same re-read repairs changes lost while the subscription was down (a Redis
// restart, a network cut: pub/sub does not replay).
func (p *Redis) Follow(ctx context.Context, meeting ids.MeetingID, fn func(Event)) ([]Event, error) {
	sub := p.rdb.Subscribe(ctx, p.channel(meeting))
	if _, err := sub.Receive(ctx); err != nil {
		_ = sub.Close()
		return nil, fmt.Errorf("presence follow %s: %w", meeting, err)
	}
	seed := make(chan reading, 1)
	go p.follow(ctx, sub, meeting, fn, seed)
	r, err := p.others(ctx, meeting)
	seed <- r // empty on error: the next resync delivers everyone
	if err != nil {
		return nil, err
	}
	out := make([]Event, 0, len(r.live))
	for _, e := range r.live {
		out = append(out, e.event())
	}
	return out, nil
}

// reading is one read of a meeting's presence: the entries of live nodes, and those of
// dead nodes this follower removed.
type reading struct {
	live, lost []presenceEntry
	at         time.Time // when the read began
}

// follow runs Follow's goroutine. known is what fn has been told (plus the first list,
// once seed brings it), for the resync to compare with.
func (p *Redis) follow(ctx context.Context, sub *goredis.PubSub, meeting ids.MeetingID, fn func(Event),
	seed <-chan reading) {
	defer sub.Close()
	every := p.Resync
	if every <= 0 {
		every = nodeTTL / 2
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	known := map[string]presenceEntry{}
	touched := map[string]bool{} // changed by a message before the first list came
	seeded := false
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case first := <-seed:
			for _, e := range first.live {
				if !touched[e.Participant.ID] {
					known[e.Participant.ID] = e
				}
			}
			p.deliverLost(meeting, first, known, fn)
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
				known[e.Participant.ID] = e
			}
			fn(e.event())
		case <-tick.C:
			if seeded {
				p.resync(ctx, meeting, known, fn)
			}
		}
	}
}

// resync re-reads the meeting's presence and delivers the differences from known.
func (p *Redis) resync(ctx context.Context, meeting ids.MeetingID, known map[string]presenceEntry, fn func(Event)) {
	r, err := p.others(ctx, meeting)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("presence resync", "meeting", meeting, "err", err)
		}
		return
	}
	present := make(map[string]bool, len(r.live))
	for _, e := range r.live {
		id := e.Participant.ID
		present[id] = true
		if old, ok := known[id]; !ok || !sameEntry(old, e) {
			known[id] = e
			fn(e.event())
		}
	}
	p.deliverLost(meeting, r, known, fn)
	for id, e := range known {
		if !present[id] {
			delete(known, id)
			ev := e.event()
			ev.Left = true
			fn(ev)
		}
	}
}

// deliverLost delivers the entries this follower removed (their node is dead) as lost,
// whether or not fn had been told of them.
func (p *Redis) deliverLost(meeting ids.MeetingID, r reading, known map[string]presenceEntry, fn func(Event)) {
	for _, e := range r.lost {
		delete(known, e.Participant.ID)
		p.log.Info("presence: participant gone with its node", "meeting", meeting, "participant", e.Participant.ID)
		ev := e.event()
		// Its node was alive when it announced the entry, and at its last refresh, which
		// the expired key dates at least nodeTTL before this read.
		ev.Left, ev.Lost, ev.At = true, true, r.at.Add(-nodeTTL)
		if e.At.After(ev.At) {
			ev.At = e.At
		}
		fn(ev)
	}
}

func sameEntry(a, b presenceEntry) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// others reads who is on the other live nodes in the meeting. Entries of nodes whose
// liveness key has expired (crashed: they withdrew no one) are removed from the hash;
// those this call removed are returned as lost.
func (p *Redis) others(ctx context.Context, meeting ids.MeetingID) (reading, error) {
	r := reading{at: time.Now()}
	all, err := p.rdb.HGetAll(ctx, p.hashKey(meeting)).Result()
	if err != nil {
		return r, fmt.Errorf("presence follow %s: %w", meeting, err)
	}
	alive := map[string]bool{}
	dead := map[string]string{}
	deadEntry := map[string]presenceEntry{}
	for id, v := range all {
		var e presenceEntry
		if json.Unmarshal([]byte(v), &e) != nil || e.Node == p.node {
			continue
		}
		up, seen := alive[e.Node]
		if !seen {
			n, err := p.rdb.Exists(ctx, p.prefix+"node:"+e.Node).Result()
			if err != nil {
				return reading{at: r.at}, fmt.Errorf("presence follow %s: %w", meeting, err)
			}
			up = n == 1
			alive[e.Node] = up
		}
		if up {
			r.live = append(r.live, e)
		} else {
			dead[id], deadEntry[id] = v, e
		}
	}
	for id, v := range dead {
		// Only the entry read: a live node may have announced the participant meanwhile.
		n, err := delIfSame.Run(ctx, p.rdb, []string{p.hashKey(meeting)}, id, v).Int()
		switch {
		case err != nil && err != goredis.Nil:
			p.log.Warn("presence: remove a dead node's entry", "meeting", meeting, "err", err)
		case n == 1:
			r.lost = append(r.lost, deadEntry[id])
		}
	}
	return r, nil
}

// delIfSame deletes a hash field if it still holds the value given.
var delIfSame = goredis.NewScript(`if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
	return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0`)
