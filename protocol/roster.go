package protocol

import (
	"encoding/json"
	"errors"
	"strconv"
)

// KindRoster is the server → client message that carries changes to the meeting's
// participants: who entered or changed (mute, streams), with their whole latest state,
// and who left. It replaces one message per change (participant_joined, _updated and
// _left before issue 11): the server keeps each endpoint's pending changes as a set, the
// latest state per participant winning and a join followed by a leave cancelling, and
// sends the set at most every few hundred milliseconds, so a join ramp of N endpoints
// writes O(N) messages to each socket rather than one per join, and a socket that reads
// slowly gets a larger roster, never a longer queue. Changes come in order with the
// other messages: a roster is sent before any message queued after the changes in it.
const KindRoster Kind = "roster"

// Roster is the payload of a roster message (KindRoster). A client applies it to the list
// that joined started: each of Participants replaces (or adds) the entry with its id, then
// each of Left is removed. An id appears in at most one of the two lists.
type Roster struct {
	// Participants entered the meeting or changed, each in its latest state.
	Participants []Participant `json:"participants,omitempty"`
	// Left are the ids of participants that left.
	Left []string `json:"left,omitempty"`
}

// errRosterID: a roster names a participant without an id.
var errRosterID = errors.New("participant without id")

// Validate checks that every entry names a participant.
func (r *Roster) Validate() error {
	for _, p := range r.Participants {
		if p.ID == "" {
			return errRosterID
		}
	}
	for _, id := range r.Left {
		if id == "" {
			return errRosterID
		}
	}
	return nil
}

// MaxRosterBytes bounds the participants one roster or joined message carries (their JSON),
// so that a large meeting's list is split across messages each under MaxMessageBytes,
// which clients enforce on what they read: 421 participants of a load test made a joined
// message of 65,676 bytes, and every later join failed (issue 11).
const MaxRosterBytes = 40 << 10

// AppendRoster appends a roster message to dst: participants are each one Participant
// already encoded as JSON (the server encodes a change once for every endpoint it tells),
// left are ids. The caller keeps the message under MaxMessageBytes by passing at most
// MaxRosterBytes of participants and of ids.
func AppendRoster(dst []byte, participants []json.RawMessage, left []string) []byte {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, Version, 10)
	dst = append(dst, `,"type":"`+string(KindRoster)+`","data":{`...)
	if len(participants) > 0 {
		dst = append(dst, `"participants":[`...)
		for i, p := range participants {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, p...)
		}
		dst = append(dst, ']')
	}
	if len(left) > 0 {
		if len(participants) > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `"left":[`...)
		for i, id := range left {
			if i > 0 {
				dst = append(dst, ',')
			}
			b, _ := json.Marshal(id) // a string always encodes
			dst = append(dst, b...)
		}
		dst = append(dst, ']')
	}
	return append(dst, "}}"...)
}
