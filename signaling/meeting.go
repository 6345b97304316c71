package signaling

import (
	"sync"

	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/sfu"
)

// publication is a track live in a meeting and who published it.
type publication struct {
	owner  *session
	source protocol.Source
}

// meeting is the live state of one meeting on this server: who is connected and what
// they publish. Every published track is forwarded to every other participant.
type meeting struct {
	srv *Server
	id  string

	mu           sync.Mutex // guards participants and tracks
	participants map[string]*session
	tracks       map[*sfu.UpTrack]publication
}

func newMeeting(srv *Server, id string) *meeting {
	return &meeting{srv: srv, id: id, participants: map[string]*session{}, tracks: map[*sfu.UpTrack]publication{}}
}

// add enters s into the meeting, announces it to the others, subscribes s to every live
// track, and returns the others as s should first see them.
func (m *meeting) add(s *session) []protocol.Participant {
	m.mu.Lock()
	defer m.mu.Unlock()
	others := make([]protocol.Participant, 0, len(m.participants))
	for _, o := range m.participants {
		others = append(others, o.participant())
		o.reply(protocol.KindParticipantJoined, "", s.participant())
	}
	m.participants[s.self.ID] = s
	for up, pub := range m.tracks {
		m.subscribe(s, up, pub)
	}
	if mt := m.srv.cfg.Metrics; mt != nil {
		mt.Participants.Inc()
	}
	return others
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
	for up, pub := range m.tracks {
		if pub.owner == s {
			delete(m.tracks, up)
		}
	}
	for _, o := range m.participants {
		o.reply(protocol.KindParticipantLeft, "", protocol.ParticipantLeft{ID: s.self.ID})
	}
	m.mu.Unlock()
	if mt := m.srv.cfg.Metrics; mt != nil {
		mt.Participants.Dec()
	}
	m.srv.dropMeetingIfEmpty(m)
}

func (m *meeting) empty() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.participants) == 0
}

// published forwards a new track of s to everyone else in the meeting.
func (m *meeting) published(s *session, up *sfu.UpTrack) {
	pub := publication{owner: s, source: s.sourceOf(up)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.participants[s.self.ID] != s {
		return // it left while the track was arriving
	}
	m.tracks[up] = pub
	for _, o := range m.participants {
		if o != s {
			m.subscribe(o, up, pub)
		}
	}
}

func (m *meeting) unpublished(up *sfu.UpTrack) {
	m.mu.Lock()
	delete(m.tracks, up)
	m.mu.Unlock()
}

// subscribe forwards up to o. Microphone and camera share one stream id so the
// browser keeps them in sync; the screen has its own. Caller holds m.mu.
func (m *meeting) subscribe(o *session, up *sfu.UpTrack, pub publication) {
	stream := pub.owner.self.Streams[protocol.SourceCamera]
	if pub.source == protocol.SourceScreen {
		stream = pub.owner.self.Streams[protocol.SourceScreen]
	}
	trackID := pub.owner.self.ID + "." + string(pub.source)
	if _, err := o.peer.Subscribe(up, trackID, stream); err != nil {
		o.log.Warn("subscribe", "track", trackID, "err", err)
	}
}

// updated announces a participant's changed state (mute) to the others.
func (m *meeting) updated(s *session) {
	p := s.participant()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.participants {
		if o != s {
			o.reply(protocol.KindParticipantUpdated, "", p)
		}
	}
}

// snapshot lists the participants except the one with id except.
func (m *meeting) snapshot(except string) []protocol.Participant {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]protocol.Participant, 0, len(m.participants))
	for id, o := range m.participants {
		if id != except {
			out = append(out, o.participant())
		}
	}
	return out
}

func (m *meeting) closeAll() {
	m.mu.Lock()
	var all []*session
	for _, s := range m.participants {
		all = append(all, s)
	}
	m.mu.Unlock()
	for _, s := range all {
		s.close(protocol.CloseMeetingEnded, "server shutting down")
	}
}
