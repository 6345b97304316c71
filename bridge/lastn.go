package bridge

import (
	"slices"
	"strings"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/sfu"
)

// Each meeting on this bridge has one sfu.Selector (Last-N and the dominant speaker) for
// the cameras and microphones of the meeting's streams here: those its endpoints publish
// and those that arrive over its relay links. A stream joins its meeting's selector when
// signaling subscribes someone to it in that meeting; screen shares never join (the
// content channel is always forwarded). Because a stream's gate is shut for all its
// subscribers at once, relay links included, a link carries the video of at most VideoN
// sources and the audio of the few loudest whatever the meeting's size; the bridge beyond
// selects again among what it receives (the audio levels travel with the audio).

// meetingSelector is one meeting's selector and the streams in it. Guarded by Agent.mu.
type meetingSelector struct {
	sel     *sfu.Selector
	members map[ids.StreamKey]*sfu.UpTrack // nil value: in the meeting, not published here yet
}

// Dominant is a meeting's dominant speaker on this bridge (the participant), "" when
// nobody has spoken or the meeting has no selector here.
func (a *Agent) Dominant(meeting ids.MeetingID) ids.ParticipantID {
	a.mu.Lock()
	ms := a.selectors[meeting]
	a.mu.Unlock()
	if ms == nil {
		return ""
	}
	return ids.ParticipantID(ms.sel.Dominant())
}

// Pin always forwards participant's camera and microphone in meeting on this bridge,
// whatever Last-N chooses (the chair, the floor holder), and gives its camera first call on
// every link's bandwidth; on=false ends that. A pin holds until it is lifted, also for
// streams that arrive later. Signaling calls it as the chair and the floor change.
func (a *Agent) Pin(meeting ids.MeetingID, participant ids.ParticipantID, on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	set := a.pins[meeting]
	switch {
	case on && set == nil:
		set = map[ids.ParticipantID]bool{}
		a.pins[meeting] = set
		fallthrough
	case on:
		set[participant] = true
	default:
		delete(set, participant)
		if len(set) == 0 {
			delete(a.pins, meeting)
		}
	}
	if ms := a.selectors[meeting]; ms != nil {
		ms.sel.Pin(string(participant), on)
	}
}

// ApplyPin carries out a pin command: Pin for the meeting, or PinFor with a peer.
func (a *Agent) ApplyPin(p protocol.BridgePin) {
	if p.Peer.IsZero() {
		a.Pin(p.Meeting, p.Participant, p.On)
		return
	}
	a.PinFor(p.Peer, p.Participant, p.On)
}

// PinFor gives participant's streams first call on the bandwidth of peer's own link (a
// subscriber pinned that site on its page), or ends that; Last-N is not changed. It holds
// for the streams peer subscribes to later, until lifted or the peer closes.
func (a *Agent) PinFor(peer ids.PeerID, participant ids.ParticipantID, on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	set := a.peerPins[peer]
	if on {
		if set == nil {
			set = map[ids.ParticipantID]bool{}
			a.peerPins[peer] = set
		}
		set[participant] = true
	} else {
		delete(set, participant)
		if len(set) == 0 {
			delete(a.peerPins, peer)
		}
	}
	for sk, sub := range a.subs {
		if sk.peer == peer && sk.key.Participant == participant {
			sub.pinned = on
			if sub.down != nil {
				sub.down.SetPinned(on)
			}
		}
	}
}

// PinnedFor lists the streams forwarded to peer that it pinned (PinFor), sorted.
func (a *Agent) PinnedFor(peer ids.PeerID) []ids.StreamKey {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []ids.StreamKey
	for sk, sub := range a.subs {
		if sk.peer == peer && sub.down != nil && sub.down.Pinned() {
			out = append(out, sk.key)
		}
	}
	slices.SortFunc(out, func(x, y ids.StreamKey) int { return strings.Compare(x.String(), y.String()) })
	return out
}

// reportSelection passes a meeting's selection to Events.Speaker (on the selector's
// goroutine).
func (a *Agent) reportSelection(meeting ids.MeetingID) func(sfu.Selection) {
	return func(sel sfu.Selection) {
		if a.ev.Speaker == nil {
			return
		}
		lastN := make([]ids.ParticipantID, len(sel.Video))
		for i, v := range sel.Video {
			lastN[i] = ids.ParticipantID(v)
		}
		a.ev.Speaker(meeting, ids.ParticipantID(sel.Dominant), lastN)
	}
}

// selectable tells whether a stream takes part in Last-N.
func selectable(key ids.StreamKey) bool {
	return key.Source == ids.SourceCamera || key.Source == ids.SourceMicrophone
}

// joinMeeting puts key in meeting's selector, creating it, and gates the stream if it is
// published here. Caller holds a.mu.
func (a *Agent) joinMeeting(meeting ids.MeetingID, key ids.StreamKey) {
	if meeting == "" || !selectable(key) {
		return
	}
	if other, ok := a.meetingOf[key]; ok && other != meeting {
		a.log.Warn("stream subscribed in two meetings; Last-N follows the first", "key", key.String(),
			"meeting", other, "also", meeting)
		return
	}
	ms := a.selectors[meeting]
	if ms == nil {
		ms = &meetingSelector{members: map[ids.StreamKey]*sfu.UpTrack{},
			sel: a.sfu.NewSelector(sfu.SelectorParams{Logger: a.log.With("meeting", meeting), OnChange: a.reportSelection(meeting)})}
		a.selectors[meeting] = ms
		for p := range a.pins[meeting] {
			ms.sel.Pin(string(p), true)
		}
		a.refollow(meeting, ms)
	}
	a.meetingOf[key] = meeting
	if _, ok := ms.members[key]; ok {
		return
	}
	ms.members[key] = nil
	if st, ok := a.streams[key]; ok {
		a.gate(ms, key, st.up)
	}
}

// gate adds a published stream to its selector. Caller holds a.mu.
func (a *Agent) gate(ms *meetingSelector, key ids.StreamKey, up *sfu.UpTrack) {
	ms.members[key] = up
	ms.sel.Add(up, string(key.Participant))
}

// streamPublished gates a new stream whose meeting is known. Caller holds a.mu.
func (a *Agent) streamPublished(key ids.StreamKey, up *sfu.UpTrack) {
	if m, ok := a.meetingOf[key]; ok {
		if ms := a.selectors[m]; ms != nil {
			a.gate(ms, key, up)
		}
	}
}

// streamEnded takes an ended stream out of its selector; it stays a member, so it is
// gated again if it comes back (a relay re-established). Caller holds a.mu.
func (a *Agent) streamEnded(key ids.StreamKey, up *sfu.UpTrack) {
	m, ok := a.meetingOf[key]
	if !ok {
		return
	}
	if ms := a.selectors[m]; ms != nil && ms.members[key] == up {
		ms.members[key] = nil
		ms.sel.Remove(up)
	}
}

// leaveMeeting drops key from its meeting when nobody here is subscribed to it any more,
// and the meeting's selector when it has no stream left. Caller holds a.mu.
func (a *Agent) leaveMeeting(key ids.StreamKey) {
	m, ok := a.meetingOf[key]
	if !ok {
		return
	}
	for sk := range a.subs {
		if sk.key == key {
			return
		}
	}
	delete(a.meetingOf, key)
	ms := a.selectors[m]
	if ms == nil {
		return
	}
	if up := ms.members[key]; up != nil {
		ms.sel.Remove(up)
	}
	delete(ms.members, key)
	if len(ms.members) == 0 {
		delete(a.selectors, m)
		go ms.sel.Close() // waits for its goroutine; not under a.mu
	}
}
