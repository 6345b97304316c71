package signaling

import (
	"sync"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
)

// recordingStates keeps which meetings this node records, so that the page of everyone
// in them shows the indicator, those who join later included. Its mu comes after
// meeting.mu in the lock order (joins read it under meeting.mu) and is never held while
// taking another lock.
type recordingStates struct {
	mu     sync.Mutex
	active map[ids.MeetingID]protocol.Recording
}

func (r *recordingStates) get(id ids.MeetingID) (protocol.Recording, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.active[id]
	return st, ok
}

func (r *recordingStates) set(id ids.MeetingID, st protocol.Recording) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !st.Active {
		delete(r.active, id)
		return
	}
	if r.active == nil {
		r.active = map[ids.MeetingID]protocol.Recording{}
	}
	r.active[id] = st
}

// SetRecording records whether meeting is being recorded and tells its participants on
// this node (a recording message); those who join later get it after joined. The state
// is stored before the meeting's lock is taken, so a join either reads the new state or
// is already in the meeting when it is told: nobody misses a change.
//
// Participants on other signaling nodes are not told (the recording runs at this node's
// bridge; sharing the state through presence is left to do).
func (s *Server) SetRecording(meetingID string, st protocol.Recording) {
	id := ids.MeetingID(meetingID)
	s.recording.set(id, st)
	s.mu.Lock()
	m := s.meetings[id]
	s.mu.Unlock()
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.participants {
		o.reply(protocol.KindRecording, "", st)
	}
}

// sendRecording tells s the meeting's recording state after its joined reply, if the
// meeting is being recorded. Caller holds the meeting's mu (so no change slips between).
func (s *session) sendRecording(meetingID string) {
	if st, ok := s.srv.recording.get(ids.MeetingID(meetingID)); ok {
		s.reply(protocol.KindRecording, "", st)
	}
}

// ParticipantSite names the site of a participant of a live meeting on this node, for
// the recorder (which records the streams of the meeting's participants, by site). It
// takes Server.mu and meeting.mu: the caller may hold the bridge agent's lock (the agent
// takes no signaling lock while calling into signaling, and signaling makes no bridge
// call under its locks).
func (s *Server) ParticipantSite(meetingID, participantID string) (site string, ok bool) {
	s.mu.Lock()
	m := s.meetings[ids.MeetingID(meetingID)]
	s.mu.Unlock()
	if m == nil {
		return "", false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.participants[participantID]
	if p == nil {
		return "", false
	}
	return p.self.Site, true
}
