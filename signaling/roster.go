package signaling

// Roster news (issue 11): every join, leave and mute is news for every other participant,
// so a meeting's ramp of N joins is O(N²) news. Queued as one message each, it was as many
// socket writes, and a socket that read slowly for a moment overflowed its sendBacklog and
// was closed (111 of them during a 1 × 500 ramp). Each session keeps its news instead as a
// pending set, one entry per participant (the latest state wins; a join followed by a
// leave cancels), that its writer sends as roster messages at most every rosterEvery. The
// set is bounded by the meeting's size, not by how fast news comes.

import (
	"encoding/json"
	"time"

	"github.com/cau-project/cau/protocol"
)

// rosterEvery is the least time between two roster messages from the set: the first
// change after a quiet spell goes out at once, those that follow within it wait for it.
const rosterEvery = 150 * time.Millisecond

// rosterNews is one participant's change, shared by every session told of it: state is
// its Participant encoded once (nil: it left). Read-only once made.
type rosterNews struct {
	id    string
	state json.RawMessage
}

// newsOf encodes p's state as news for the others.
func newsOf(p protocol.Participant) (*rosterNews, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return &rosterNews{id: p.ID, state: b}, nil
}

// leftNews is the news that the participant id left.
func leftNews(id string) *rosterNews { return &rosterNews{id: id} }

// rosterEntry is what a session has yet to tell of one participant: news, and fresh if
// the endpoint never heard of the participant before it (a leave then cancels the entry).
type rosterEntry struct {
	news  *rosterNews
	fresh bool
}

// rosterSet is a session's pending roster news, in the order participants first changed.
// Guarded by sendQueue.mu.
type rosterSet struct {
	byID  map[string]rosterEntry
	order []string // ids, possibly repeated or cancelled: byID decides
}

// add records news; isNew says the participant just entered (the endpoint cannot know it).
func (r *rosterSet) add(n *rosterNews, isNew bool) {
	if r.byID == nil {
		r.byID = map[string]rosterEntry{}
	}
	e, ok := r.byID[n.id]
	switch {
	case !ok:
		if n.state == nil && isNew { // cannot happen: a leave is never new
			return
		}
		r.order = append(r.order, n.id)
		r.byID[n.id] = rosterEntry{news: n, fresh: isNew && n.state != nil}
	case n.state == nil && e.fresh: // entered and left before the endpoint was told
		delete(r.byID, n.id)
	default:
		e.news = n
		r.byID[n.id] = e
	}
}

func (r *rosterSet) empty() bool { return len(r.byID) == 0 }

// batch takes the pending news out, in order, and empties the set.
func (r *rosterSet) batch() *rosterBatch {
	b := &rosterBatch{}
	for _, id := range r.order {
		e, ok := r.byID[id]
		if !ok {
			continue
		}
		delete(r.byID, id) // an id repeated in order is sent once
		if e.news.state == nil {
			b.left = append(b.left, id)
		} else {
			b.states = append(b.states, e.news.state)
		}
	}
	r.order = r.order[:0]
	return b
}

// rosterBatch is roster news sealed in the send queue's order, encoded by take.
type rosterBatch struct {
	states []json.RawMessage
	left   []string
}

// encode writes the batch as roster messages, each with at most MaxRosterBytes of
// participants and of ids, so that none exceeds what clients read (MaxMessageBytes).
func (b *rosterBatch) encode(out [][]byte) [][]byte {
	states, left := b.states, b.left
	for len(states) > 0 || len(left) > 0 {
		n, size := 0, 0
		for n < len(states) && (n == 0 || size+len(states[n]) <= protocol.MaxRosterBytes) {
			size += len(states[n]) + 1
			n++
		}
		k := 0
		for k < len(left) && size+len(left[k])+3 <= protocol.MaxRosterBytes {
			size += len(left[k]) + 3
			k++
		}
		if n == 0 && k == 0 { // an id longer than the budget: cannot happen, ids are short
			k = 1
		}
		out = append(out, protocol.AppendRoster(nil, states[:n], left[:k]))
		states, left = states[n:], left[k:]
	}
	return out
}

// tellRoster queues news of a participant for s's endpoint; isNew says it just entered.
func (s *session) tellRoster(n *rosterNews, isNew bool) {
	select {
	case <-s.done:
		return
	default:
	}
	s.send.pushRoster(n, isNew)
}

// pushRoster adds news to the pending set and makes sure the writer sends it: now if no
// roster went out within rosterEvery, else when that time is up.
func (q *sendQueue) pushRoster(n *rosterNews, isNew bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.roster.add(n, isNew)
	if q.rosterArmed {
		return
	}
	q.rosterArmed = true
	wait := time.Until(q.rosterSent.Add(rosterEvery))
	if wait <= 0 {
		q.rosterDue = true
		q.wake()
		return
	}
	time.AfterFunc(wait, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		q.rosterDue = true
		q.wake()
	})
}

// pushRosterNow seals news that must go out at once, in order with what follows: the rest
// of the list joined could not carry. Its members join the pending set's order.
func (q *sendQueue) pushRosterNow(states []json.RawMessage) {
	if len(states) == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seal()
	q.items = append(q.items, queued{roster: &rosterBatch{states: states}})
	q.wake()
}

// seal puts the pending set into the queue as a batch, before a message that must follow
// the news in it. Caller holds q.mu.
func (q *sendQueue) seal() {
	if !q.roster.empty() {
		q.items = append(q.items, queued{roster: q.roster.batch()})
	}
}

// replyJoined queues j, with its list of participants whole if the message stays under
// MaxMessageBytes (one encoding, as before issue 11); in a larger meeting up to
// MaxRosterBytes of them, and the rest in roster messages right behind it. Under the
// meeting's lock (meeting.add), so that no news of the meeting comes before it.
func (s *session) replyJoined(id string, j protocol.Joined) {
	b, err := protocol.Encode(protocol.KindJoined, id, j)
	if err != nil {
		s.log.Error("encode reply", "type", protocol.KindJoined, "err", err)
		return
	}
	if len(b) <= protocol.MaxMessageBytes {
		s.enqueue(b)
		return
	}
	var rest []json.RawMessage
	j.Participants, rest = splitJoined(j.Participants)
	j.More = len(rest)
	s.reply(protocol.KindJoined, id, j)
	s.send.pushRosterNow(rest)
}

// splitJoined splits the others a joining endpoint is told of: those joined carries (up
// to MaxRosterBytes of them), and the encoded states of the rest, for roster messages.
func splitJoined(others []protocol.Participant) ([]protocol.Participant, []json.RawMessage) {
	size := 0
	for i, p := range others {
		b, err := json.Marshal(p)
		if err != nil {
			continue // a Participant always encodes
		}
		if size += len(b) + 1; size <= protocol.MaxRosterBytes {
			continue
		}
		rest := make([]json.RawMessage, 0, len(others)-i)
		rest = append(rest, b)
		for _, p := range others[i+1:] {
			if b, err := json.Marshal(p); err == nil {
				rest = append(rest, b)
			}
		}
		return others[:i], rest
	}
	return others, nil
}
