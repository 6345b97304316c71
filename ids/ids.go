// Package ids holds Cầu's identities: the names signaling, the bridges, the control
// protocol and monitoring use for meetings, sites, participants, bridges, streams and
// bridge peers. Each identity that travels as text has exactly one grammar, here, with its
// parser next to its printer, so no package builds or splits another package's strings.
//
// ids is a leaf: it imports nothing of Cầu.
package ids

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MeetingID names a meeting (the store's id, or an ad hoc meeting's token claim).
type MeetingID string

// SiteID names a site of the administrative tree.
type SiteID string

// EndpointID names a registered endpoint (a meeting-room device).
type EndpointID string

// ParticipantID names one participant of a live meeting: one join of one socket.
type ParticipantID string

// BridgeID names a bridge. Bridge ids end relay peer ids, so they may not contain the
// separator "~" (see RelayPeer).
type BridgeID string

// LocalBridge is the id of the bridge inside signaling's own process; a bridge process
// may not register under it.
const LocalBridge BridgeID = "local"

// ErrInvalid marks text that is not a valid identity.
var ErrInvalid = errors.New("invalid id")

// Valid reports whether b can name a bridge: not empty, no "~" and no spaces.
func (b BridgeID) Valid() bool {
	return b != "" && !strings.ContainsAny(string(b), "~ \t\r\n")
}

// Source says what a published stream carries.
type Source string

// Stream sources.
const (
	SourceMicrophone Source = "microphone"
	SourceCamera     Source = "camera"
	SourceScreen     Source = "screen" // the content channel: slides or a shared screen
)

// Valid reports whether s is a known source.
func (s Source) Valid() bool {
	return s == SourceMicrophone || s == SourceCamera || s == SourceScreen
}

// StreamKey names a stream everywhere it goes: on the endpoint's bridge, across relay
// links (a relayed track carries the key's text as its track id) and in signaling. Its
// text form is "<participant>.<source>".
type StreamKey struct {
	Participant ParticipantID
	Source      Source
}

// String is the key's text form.
func (k StreamKey) String() string { return string(k.Participant) + "." + string(k.Source) }

// MarshalText implements encoding.TextMarshaler (the key is a JSON string on the wire).
func (k StreamKey) MarshalText() ([]byte, error) {
	if k.Participant == "" || !k.Source.Valid() {
		return nil, fmt.Errorf("%w: stream key %q", ErrInvalid, k.String())
	}
	return []byte(k.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *StreamKey) UnmarshalText(b []byte) error {
	v, err := ParseStreamKey(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// ParseStreamKey reads "<participant>.<source>"; the source is after the last ".".
func ParseStreamKey(s string) (StreamKey, error) {
	i := strings.LastIndexByte(s, '.')
	if i <= 0 {
		return StreamKey{}, fmt.Errorf("%w: stream key %q", ErrInvalid, s)
	}
	k := StreamKey{Participant: ParticipantID(s[:i]), Source: Source(s[i+1:])}
	if !k.Source.Valid() {
		return StreamKey{}, fmt.Errorf("%w: stream key %q: unknown source", ErrInvalid, s)
	}
	return k, nil
}

// EndpointPeer is an endpoint's peer on its bridge. Generation counts the peers the
// participant had: it moves to a new peer (generation+1) when its bridge fails.
type EndpointPeer struct {
	Participant ParticipantID
	Generation  int
}

// RelayPeer is one end of a relay link: the peer, on one bridge, that faces Bridge for
// Meeting.
type RelayPeer struct {
	Meeting MeetingID
	Bridge  BridgeID
}

// PeerID names a peer on a bridge: an endpoint's (Relay is zero) or one end of a relay
// link (Endpoint is zero). It is comparable, so it keys maps. Its text form is
// "<participant>~<generation>" or "relay~<meeting>~<bridge>".
type PeerID struct {
	Endpoint EndpointPeer
	Relay    RelayPeer
}

// ForEndpoint is the id of an endpoint peer.
func ForEndpoint(p ParticipantID, generation int) PeerID {
	return PeerID{Endpoint: EndpointPeer{Participant: p, Generation: generation}}
}

// ForRelay is the id of the relay peer facing bridge other for meeting.
func ForRelay(meeting MeetingID, other BridgeID) PeerID {
	return PeerID{Relay: RelayPeer{Meeting: meeting, Bridge: other}}
}

// IsRelay reports whether p is one end of a relay link.
func (p PeerID) IsRelay() bool { return p.Relay != RelayPeer{} }

// IsZero reports whether p names no peer.
func (p PeerID) IsZero() bool { return p == PeerID{} }

const relayPrefix = "relay~"

// String is the id's text form.
func (p PeerID) String() string {
	switch {
	case p.IsRelay():
		return relayPrefix + string(p.Relay.Meeting) + "~" + string(p.Relay.Bridge)
	case p.IsZero():
		return ""
	default:
		return string(p.Endpoint.Participant) + "~" + strconv.Itoa(p.Endpoint.Generation)
	}
}

// MarshalText implements encoding.TextMarshaler (a peer id is a JSON string on the wire).
func (p PeerID) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler. An empty text is the zero id.
func (p *PeerID) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*p = PeerID{}
		return nil
	}
	v, err := ParsePeerID(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// ParsePeerID reads a peer id's text form. In a relay peer id the bridge is after the
// last "~" (bridge ids have none; meeting ids may).
func ParsePeerID(s string) (PeerID, error) {
	if rest, ok := strings.CutPrefix(s, relayPrefix); ok {
		i := strings.LastIndexByte(rest, '~')
		if i <= 0 || i == len(rest)-1 {
			return PeerID{}, fmt.Errorf("%w: relay peer %q", ErrInvalid, s)
		}
		return ForRelay(MeetingID(rest[:i]), BridgeID(rest[i+1:])), nil
	}
	i := strings.LastIndexByte(s, '~')
	if i <= 0 {
		return PeerID{}, fmt.Errorf("%w: peer %q", ErrInvalid, s)
	}
	gen, err := strconv.Atoi(s[i+1:])
	if err != nil || gen < 1 || strconv.Itoa(gen) != s[i+1:] {
		return PeerID{}, fmt.Errorf("%w: peer %q: bad generation", ErrInvalid, s)
	}
	return ForEndpoint(ParticipantID(s[:i]), gen), nil
}
