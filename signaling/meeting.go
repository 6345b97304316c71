package signaling

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/presence"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/relayplan"
	"github.com/cau-project/cau/rooms"
)

// streamInfo is a stream live in a meeting: who publishes it, from which bridge.
type streamInfo struct {
	owner  *session
	origin Bridge
	source protocol.Source
	kind   string
}

// meeting is the live state of one meeting on this signaling server: who is connected
// on which bridge, what they publish, the relay links between bridges, and what each
// bridge forwards to whom. reconcile turns the first two into the last two (a plan from
// package relayplan) and queues the bridge commands on ops.
type meeting struct {
	srv *Server
	id  ids.MeetingID
	// joining counts the joins between meetingFor and add, which keep the meeting from
	// being dropped while it is empty. Guarded by Server.mu.
	joining int

	// sched is the meeting as scheduled in the store; nil for an ad hoc meeting. Set at
	// creation, read-only after.
	sched      *rooms.Meeting
	stopWatch  context.CancelFunc // ends the store watch; nil if none
	stopFollow context.CancelFunc // ends the presence subscription; nil if none
	writes     *writeQueue        // roll call, audit and presence writes, in order
	// ops carries the bridge commands reconcile decides, in order, to the goroutine that
	// applies them without m.mu.
	ops *opQueue

	// mu guards everything below; reconcile runs under it. Lock order: Server.mu, then
	// mu, then session.mu, writes.mu, ops.mu, focus.mu, router.mu (see the package doc).
	mu           sync.Mutex
	participants map[string]*session
	streams      map[ids.StreamKey]*streamInfo
	relays       map[relayplan.Link]*relayLink
	fwd          map[relayplan.Forward]relayplan.Track // what the bridges were told to forward
	floor        rooms.FloorState
	chairSite    string                    // ad hoc meetings: the site of the first chair to join
	remote       map[string]presence.Event // participants on other signaling nodes, by id
	// early holds presence events that arrive while the meeting reads the other nodes'
	// list; nil once the list is in remote.
	early []presence.Event
	// lastFence is the fence of the last lease this node held for the meeting (fence).
	lastFence atomic.Pointer[rooms.Fence]
	// movedAway is set when this node lost the meeting's lease: its sessions end so that
	// they come back through the new owner, while their media goes on through the
	// bridges, so their ends are no disconnects for the roll call.
	movedAway bool

	// The dominant speaker and pins (speaker.go): each bridge's latest selection and its
	// depth in the bridge tree; what each participant was last told; the sites the chair
	// pinned for everyone and those each participant pinned for itself; the pins the
	// bridges were told of.
	views     map[ids.BridgeID]speakerView
	viewDepth map[ids.BridgeID]int
	told      map[string]protocol.Speaker
	pinned    map[string]bool
	mine      map[string]map[string]bool
	pins      map[pinSent]bool

	// planExact says the records (relays, fwd, pins) are the last plan reconcile made,
	// none of it left out for want of a bridge: a leave that does not change the plan
	// but for the leaver's own forwardings may then update them without a new plan
	// (churn.go), and a join add its own. plans counts the plans made and planScans the
	// participants joins and leaves looked at to skip one: tests count their work with
	// them, not time it.
	planExact        bool
	plans, planScans int
}

func newMeeting(srv *Server, id ids.MeetingID, sched *rooms.Meeting) *meeting {
	m := meetingState(srv, id, sched)
	m.fence() // the lease the join that creates the meeting took
	srv.writers.Add(1)
	go m.writeLoop()
	go m.ops.run()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.startFloor(ctx)
	m.followPresence()
	return m
}

// meetingState is a meeting's state, empty, with none of its goroutines started.
func meetingState(srv *Server, id ids.MeetingID, sched *rooms.Meeting) *meeting {
	return &meeting{srv: srv, id: id, sched: sched, participants: map[string]*session{},
		streams: map[ids.StreamKey]*streamInfo{}, relays: map[relayplan.Link]*relayLink{},
		fwd: map[relayplan.Forward]relayplan.Track{}, writes: newWriteQueue(),
		remote: map[string]presence.Event{}, ops: newOpQueue(),
		views: map[ids.BridgeID]speakerView{}, viewDepth: map[ids.BridgeID]int{}, told: map[string]protocol.Speaker{},
		pinned: map[string]bool{}, mine: map[string]map[string]bool{}, pins: map[pinSent]bool{}}
}

// followPresence learns the participants on other signaling nodes and follows their
// changes, relaying them to this node's sessions. Changes run on the presence goroutine
// under m.mu; those that come while the list is read wait in m.early and are applied
// after it, so a change is never overwritten by the older list.
func (m *meeting) followPresence() {
	pr := m.srv.cfg.Presence
	if pr == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.stopFollow = cancel
	m.mu.Lock()
	m.early = []presence.Event{}
	m.mu.Unlock()
	others, err := pr.Follow(ctx, m.id, func(ev presence.Event) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.early != nil {
			m.early = append(m.early, ev)
			return
		}
		m.presenceChanged(ev)
	})
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.srv.log.Error("presence", "meeting", m.id, "err", err)
	}
	for _, ev := range others {
		m.remote[ev.Participant.ID] = ev
	}
	for _, ev := range m.early {
		m.presenceChanged(ev)
	}
	m.early = nil
}

// presenceChanged applies another node's change and tells this node's sessions. Caller
// holds m.mu.
func (m *meeting) presenceChanged(ev presence.Event) {
	{
		id := ev.Participant.ID
		_, known := m.remote[id]
		if ev.Lost {
			m.attendLost(ev)
		}
		switch {
		case ev.Left:
			if !known {
				return
			}
			delete(m.remote, id)
			m.tellAll(leftNews(id), false, nil)
		default:
			m.remote[id] = ev
			news, err := newsOf(ev.Participant)
			if err != nil { // a Participant always encodes; logged should that ever change
				m.srv.log.Error("encode roster news", "err", err)
				return
			}
			m.tellAll(news, !known, nil)
		}
	}
}

// announce shares s's current state with the other nodes. Caller holds m.mu (the write
// itself happens on the meeting's writer goroutine, in order).
func (m *meeting) announce(s *session, left bool) {
	pr := m.srv.cfg.Presence
	if pr == nil {
		return
	}
	p, endpoint := s.participant(), rollCallEndpoint(s)
	m.record(func(ctx context.Context) error {
		if left {
			return pr.Withdraw(ctx, m.id, ids.ParticipantID(p.ID))
		}
		return pr.Announce(ctx, m.id, p, endpoint)
	})
}

// stop ends the meeting's background work once its last participant has left.
func (m *meeting) stop() {
	if m.stopWatch != nil {
		m.stopWatch()
	}
	if m.stopFollow != nil {
		m.stopFollow()
	}
	m.writes.close() // what is queued is still written; Server.Close waits for it
	m.ops.close()    // what is queued still runs: the last relay links close
}

// Why add refused a session.
var (
	errSessionClosing = errors.New("session closing")
	errEndpointInUse  = errors.New("endpoint in use by its own device")
)

// add enters s into the meeting and announces it to the others. joined is called under
// the meeting's lock with the others and the floor as s should first see them, so the
// joined reply it sends goes out before any event about the meeting. It does nothing and
// returns errSessionClosing when s started closing while it joined (its peer failed, or
// its socket ended): close has already tried to remove it, so it must not enter. It
// returns errEndpointInUse when a session of the same room endpoint from the room's own
// device is connected and s is not from that device (issue 12, finding 6: a second
// session must not take a kiosk's meeting away).
func (m *meeting) add(s *session, joined func(others []protocol.Participant, floor *protocol.FloorState)) error {
	waitFrom := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s.lockWait = time.Since(waitFrom)
	if s.closing.Load() {
		return errSessionClosing
	}
	// A room device that comes back (after a reload or a network drop) replaces its old
	// session at once rather than leaving a frozen tile until the old one times out. Any
	// other session for the endpoint yields to a session from the room's own device.
	var replaced []*session
	if o := m.participants[s.self.ID]; o != nil && o != s {
		replaced = append(replaced, o) // it resumed on a new socket; its peer is s's now
	}
	if ep := s.claims.Endpoint; ep != "" {
		for _, o := range m.participants {
			if o.claims.Endpoint != ep || o.self.ID == s.self.ID {
				continue
			}
			if o.device != "" && o.device != s.device {
				return errEndpointInUse
			}
			replaced = append(replaced, o)
		}
	}
	for _, o := range replaced {
		go o.close(protocol.CloseReplaced, "the same endpoint joined again")
	}
	others := make([]protocol.Participant, 0, len(m.participants)+len(m.remote))
	// One encoding of the news for every other participant, not one each: under a join
	// storm this loop runs for each of N joins over up to N participants, under m.mu.
	news, err := newsOf(s.participant())
	if err != nil { // a Participant always encodes; logged should that ever change
		m.srv.log.Error("encode roster news", "err", err)
	}
	for _, o := range m.participants {
		if o.self.ID == s.self.ID {
			continue // its own earlier session, replaced above
		}
		others = append(others, o.participant())
		if news != nil {
			o.tellRoster(news, true)
		}
	}
	for _, ev := range m.remote {
		others = append(others, ev.Participant)
	}
	m.participants[s.self.ID] = s
	if s.adopted != nil { // a resumed session: what its peer does is already in place
		m.adoptState(s, s.adopted)
	}
	// The connect first: its time is then before the presence entry's, which another
	// node dates the endpoint's loss by if this one crashes.
	m.attend(s, rooms.EventConnected)
	m.announce(s, false)
	joined(others, floorToWire(m.floor))
	if len(m.views) > 0 || len(m.pinned) > 0 {
		m.sendSpeaker(s) // who speaks now, before any later change
	}
	if m.sched == nil && m.chairSite == "" && s.claims.Role == auth.RoleChair {
		// An ad hoc meeting is chaired from the site of its first chair: a floor change
		// everyone must see.
		m.chairSite = s.claims.Site
		st := m.floor.Clone()
		st.ChairSite = s.claims.Site
		st.Version++
		m.setFloor(st)
	}
	if mt := m.srv.cfg.Metrics; mt != nil {
		mt.Participants.Inc()
	}
	// Most joins change the plan only by the joiner's own forwardings (churn.go).
	if !m.movedAway && s.adopted == nil && len(replaced) == 0 && m.joinKeepsPlan(s) {
		m.subscribeJoiner(s)
	} else {
		m.reconcile()
	}
	return nil
}

// remove takes s out and tells the others at once, so its tile disappears without waiting
// for the media connection to time out.
func (m *meeting) remove(s *session) {
	m.mu.Lock()
	if m.participants[s.self.ID] != s {
		m.mu.Unlock()
		return
	}
	delete(m.participants, s.self.ID)
	pinned := len(m.mine[s.self.ID]) > 0
	delete(m.mine, s.self.ID)
	delete(m.told, s.self.ID)
	published := false
	for key, st := range m.streams {
		if st.owner == s {
			delete(m.streams, key)
			published = true
		}
	}
	// Most leaves change the plan only by the leaver's own forwardings (churn.go).
	keep := !m.movedAway && !published && !pinned && m.leaveKeepsPlan(s)
	if keep {
		m.forgetForwards(s)
	} else {
		m.forgetPeer(s.bridge, s.peerID)
	}
	if !m.movedAway {
		m.attend(s, rooms.EventDisconnected)
	}
	m.announce(s, true)
	// One news for all, as add does: when a meeting ends this runs for each of N leaves
	// over the up to N still there, under m.mu, while the next meeting joins.
	m.tellAll(leftNews(s.self.ID), false, nil)
	if !m.movedAway && !keep { // moved away: another node drives the bridges now (handOver)
		m.reconcile()
	}
	m.mu.Unlock()
	if mt := m.srv.cfg.Metrics; mt != nil {
		mt.Participants.Dec()
	}
	m.srv.dropMeetingIfEmpty(m)
}

// forgetPeer drops the forwarding records of a peer that is gone, without commands.
// Caller holds m.mu.
func (m *meeting) forgetPeer(b Bridge, peer ids.PeerID) {
	if b == nil {
		return
	}
	for k := range m.fwd {
		if k.Bridge == b.ID() && k.Peer == peer {
			delete(m.fwd, k)
		}
	}
}

func (m *meeting) empty() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.participants) == 0
}

// published records a new stream of s and forwards it to everyone else.
func (m *meeting) published(s *session, origin Bridge, key ids.StreamKey, kind string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.participants[s.self.ID] != s || origin != s.bridge {
		return // it left, or moved, while the track was arriving
	}
	if key.Participant != ids.ParticipantID(s.self.ID) {
		m.srv.log.Warn("stream of another participant ignored", "meeting", m.id, "participant", s.self.ID, "key", key.String())
		return
	}
	m.streams[key] = &streamInfo{owner: s, origin: origin, source: sourceOf(key, kind), kind: kind}
	m.reconcile()
}

func (m *meeting) unpublished(s *session, origin Bridge, key ids.StreamKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st := m.streams[key]; st != nil && st.owner == s && st.origin == origin {
		delete(m.streams, key)
		m.reconcile()
	}
}

// updated announces a participant's changed state (mute) to the others.
func (m *meeting) updated(s *session) {
	news, err := newsOf(s.participant())
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil { // a Participant always encodes; logged should that ever change
		m.srv.log.Error("encode roster news", "err", err)
	} else {
		m.tellAll(news, false, s)
	}
	m.announce(s, false)
}

// tellAll queues news for every participant but except. Caller holds m.mu.
func (m *meeting) tellAll(news *rosterNews, isNew bool, except *session) {
	for _, o := range m.participants {
		if o != except {
			o.tellRoster(news, isNew)
		}
	}
}

// snapshot lists the participants except the one with id except.
func (m *meeting) snapshot(except string) []protocol.Participant {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]protocol.Participant, 0, len(m.participants)+len(m.remote))
	for id, o := range m.participants {
		if id != except {
			out = append(out, o.participant())
		}
	}
	for _, ev := range m.remote {
		out = append(out, ev.Participant)
	}
	return out
}

// bridgeDown moves this meeting off a bridge that died: its endpoints are placed again
// and asked to reconnect; its streams and relay links are dropped; forwarding is
// recomputed over the bridges that remain.
func (m *meeting) bridgeDown(id ids.BridgeID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, st := range m.streams {
		if st.origin.ID() == id {
			delete(m.streams, key)
		}
	}
	for k := range m.fwd {
		if k.Bridge == id {
			delete(m.fwd, k)
		}
	}
	for e, l := range m.relays {
		if e.Child == id || e.Parent == id {
			l.close(id)
			delete(m.relays, e)
		}
	}
	for _, s := range m.participants {
		if s.bridge != nil && s.bridge.ID() == id {
			m.forgetPeer(s.bridge, s.peerID)
			s.migrate()
		}
	}
	m.reconcile()
}

// relayFailed drops a relay link whose connection failed; reconcile opens a new one if it
// is still needed.
func (m *meeting) relayFailed(l *relayLink) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := relayplan.Link{Child: l.child.ID(), Parent: l.parent.ID()}
	if m.relays[e] != l {
		return
	}
	delete(m.relays, e)
	m.forgetPeer(l.child, l.childPeer)
	m.forgetPeer(l.parent, l.parentPeer)
	l.close("")
	m.reconcile()
}

// closeAll closes every socket of the meeting with code: 1012 (service restart) when this
// server stops — the meeting goes on and clients reconnect to wherever signaling comes
// back — or 4005 when the meeting itself ended.
func (m *meeting) closeAll(code int, reason string) {
	m.mu.Lock()
	var all []*session
	for _, s := range m.participants {
		all = append(all, s)
	}
	m.mu.Unlock()
	for _, s := range all {
		s.close(code, reason)
	}
}
