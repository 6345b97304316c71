// Package protocol defines Cầu's signaling messages: the JSON envelope carried over the
// /ws WebSocket, the message kinds, their payloads and the validation every peer applies
// before acting on one. It is the public contract between endpoints (browsers, kiosks,
// load-test bots) and signaling; nothing in it knows about WebRTC internals or meetings.
package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cau-project/cau/ids"
)

// Version is the envelope version this package speaks. A peer that receives another
// version answers with an error of code CodeUnsupportedVersion.
const Version = 1

// MaxMessageBytes bounds one WebSocket message. SDP for a peer with a dozen tracks is about
// 10 KiB; 64 KiB leaves room and still stops abuse.
const MaxMessageBytes = 64 << 10

// Kind names a message kind.
type Kind string

// Client → server kinds.
const (
	KindJoin      Kind = "join"      // first message: authenticate and enter the meeting
	KindOffer     Kind = "offer"     // publisher connection offer (client sends media)
	KindAnswer    Kind = "answer"    // subscriber connection answer (client receives media)
	KindCandidate Kind = "candidate" // trickle ICE, both directions
	KindMute      Kind = "mute"      // the client muted or unmuted a source
	KindLeave     Kind = "leave"     // the client leaves; the server closes the socket
	KindPing      Kind = "ping"      // keep-alive; answered with pong
)

// Server → client kinds.
const (
	KindJoined    Kind = "joined"    // join accepted: who you are and who is here
	KindReconnect Kind = "reconnect" // media moved to another bridge: renegotiate both connections
	KindError     Kind = "error"     // a request failed; see Error
	KindPong      Kind = "pong"      // answer to ping
	// Participants entering, changing and leaving: KindRoster (roster.go).
)

// Envelope is the outer JSON object of every message in both directions.
type Envelope struct {
	V    int             `json:"v"`
	Kind Kind            `json:"type"`
	ID   string          `json:"id,omitempty"` // request id; echoed in the reply or error
	Data json.RawMessage `json:"data,omitempty"`
}

// Source says what a published track carries (package ids defines it, with the stream
// keys built from it).
type Source = ids.Source

// Track sources.
const (
	SourceMicrophone = ids.SourceMicrophone
	SourceCamera     = ids.SourceCamera
	SourceScreen     = ids.SourceScreen // the content channel: slides or a shared screen
)

// Target names one of the two peer connections an endpoint keeps with its bridge.
type Target string

// Peer connection targets.
const (
	TargetPublisher  Target = "publisher"  // endpoint → bridge; the endpoint offers
	TargetSubscriber Target = "subscriber" // bridge → endpoint; the bridge offers
)

// Join is the first message on a socket.
type Join struct {
	Token string `json:"token"` // a JWT from `cau token` or the API
	Name  string `json:"name,omitempty"`
	// Device is a meeting-room device's own id: random, kept by the device across reloads
	// (the kiosk page keeps it in localStorage), never shown to others. A room's session
	// that names its device is replaced only by the same device; any other session for
	// the same endpoint is refused (endpoint_in_use) while it is connected.
	Device string `json:"device,omitempty"`
	// VideoCodecs are the only video codecs the endpoint can decode (VideoCodecH264,
	// VideoCodecVP8), for an endpoint that cannot decode them all: a SIP room's hardware
	// codec decodes H.264 only. Empty: every codec the bridge forwards. Shown to the
	// others in Participant.VideoCodecs, so that browsers publish a codec it decodes.
	VideoCodecs []string `json:"video_codecs,omitempty"`
	// Resume is the resume token of the endpoint's previous session (Joined.Resume), sent
	// when it joins again after its socket was lost: the meeting's owner then adopts its
	// media connections as they are, without a new ICE/DTLS handshake (Joined.Resumed).
	Resume string `json:"resume,omitempty"`
	// Slots asks for the meeting's cameras and microphones in a fixed set of slots
	// (slots.go) rather than one track each: what a page showing a grid needs in a large
	// meeting. Recorders, gateways and tests that need every stream leave it off.
	Slots bool `json:"slots,omitempty"`
	// SlotsAuto says the endpoint can receive in slots, and leaves it to the server: it
	// then uses them in a large meeting (signaling.Config.SlotsFrom), where one track per
	// stream would not negotiate (MaxAnswerMedia). The join page sends it.
	SlotsAuto bool `json:"slots_auto,omitempty"`
}

// MaxResumeLen bounds Join.Resume.
const MaxResumeLen = 1024

// Video codecs an endpoint may name in Join.VideoCodecs.
const (
	VideoCodecH264 = "H264"
	VideoCodecVP8  = "VP8"
)

// ValidVideoCodecs reports whether c may be a Join.VideoCodecs: known codecs, each once.
func ValidVideoCodecs(c []string) bool {
	if len(c) > 2 {
		return false
	}
	for i, v := range c {
		if (v != VideoCodecH264 && v != VideoCodecVP8) || (i == 1 && c[0] == v) {
			return false
		}
	}
	return true
}

// MaxDeviceLen bounds Join.Device.
const MaxDeviceLen = 64

// ValidDevice reports whether d may be a Join.Device: empty, or up to MaxDeviceLen
// letters, digits, '-' and '_'.
func ValidDevice(d string) bool {
	if len(d) > MaxDeviceLen {
		return false
	}
	for _, c := range d {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}

// TrackInfo maps a track id (the msid track id in the SDP) to its source.
type TrackInfo struct {
	ID     string `json:"id"`
	Source Source `json:"source"`
}

// Offer carries an SDP offer: from the client for the publisher connection, or from the
// server for the subscriber connection.
type Offer struct {
	SDP    string      `json:"sdp"`
	Tracks []TrackInfo `json:"tracks,omitempty"` // client → server only
}

// Answer carries an SDP answer.
type Answer struct {
	SDP string `json:"sdp"`
}

// ICECandidate mirrors the browser's RTCIceCandidateInit.
type ICECandidate struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
}

// Candidate is one trickled ICE candidate for one of the two connections.
type Candidate struct {
	Target    Target       `json:"target"`
	Candidate ICECandidate `json:"candidate"`
}

// Mute reports that the client muted or unmuted a source.
type Mute struct {
	Source Source `json:"source"`
	Muted  bool   `json:"muted"`
}

// Participant describes one endpoint in a meeting as the others see it.
type Participant struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Site string `json:"site"`
	// SiteName is the site's name in the registry (empty if the site is not registered).
	SiteName string `json:"site_name,omitempty"`
	Role     string `json:"role"`
	// Muted lists the sources the participant has muted.
	Muted []Source `json:"muted,omitempty"`
	// Streams maps a source to the MediaStream id under which the subscriber connection
	// delivers it. Microphone and camera share one stream so browsers keep lip sync.
	Streams map[Source]string `json:"streams,omitempty"`
	// VideoCodecs are the only video codecs it decodes (Join.VideoCodecs); empty: all.
	// While a participant decodes no VP8, browsers publish their camera in H.264.
	VideoCodecs []string `json:"video_codecs,omitempty"`
}

// Joined answers a successful join.
type Joined struct {
	Meeting string      `json:"meeting"`
	Self    Participant `json:"self"`
	// Participants are the others in the meeting: all of them if the message stays under
	// MaxMessageBytes, else up to MaxRosterBytes of them, the rest following in roster
	// messages right after this one (More).
	Participants []Participant `json:"participants"`
	// More is how many participants of the list did not fit: the roster messages right
	// after this one carry them, before any other message. A client that joined again
	// learns who left while it was away once it has them all.
	More  int         `json:"more,omitempty"`
	Floor *FloorState `json:"floor,omitempty"`
	// ICEServers are the TURN servers of the endpoint's bridge, with credentials minted
	// for this join (valid for a few minutes: enough to allocate). Clients add them to
	// both connections; ICE falls back to them by itself when direct paths fail.
	ICEServers []ICEServer `json:"ice_servers,omitempty"`
	// Resume is a token to send in Join.Resume if the socket is lost and the endpoint
	// joins again (with several signaling nodes; empty with one). Keep the latest: a
	// reconnect message brings a new one.
	Resume string `json:"resume,omitempty"`
	// Resumed says the join resumed the previous session: same participant id, and the
	// media connections are kept as they are (no new offer; the client keeps both
	// connections). False after a Join.Resume: the peer was gone; renegotiate as after a
	// reconnect message.
	Resumed bool `json:"resumed,omitempty"`
	// Slots says the endpoint receives cameras and microphones in slots (Join.Slots, or
	// Join.SlotsAuto in a large meeting).
	Slots bool `json:"slots,omitempty"`
}

// ICEServer is one STUN/TURN server, in the shape of WebRTC's RTCIceServer.
type ICEServer struct {
	// URLs are turn: / turns: URIs (RFC 7065), e.g. "turn:bridge.example:443?transport=tcp".
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Reconnect tells an endpoint that its media connections were moved (its bridge failed):
// it closes both connections, opens new ones and publishes again. The socket and the
// participant id stay.
type Reconnect struct {
	Reason string `json:"reason"`
	// Resume replaces the resume token from joined (the media moved to a new peer).
	Resume string `json:"resume,omitempty"`
}

// Error codes: stable strings clients may switch on.
const (
	CodeBadMessage         = "bad_message"         // not JSON, missing fields, bad values
	CodeUnknownKind        = "unknown_kind"        // a kind this server does not know
	CodeUnsupportedVersion = "unsupported_version" // envelope version other than Version
	CodeUnauthorized       = "unauthorized"        // missing, bad or expired token
	CodeForbidden          = "forbidden"           // the role may not do this
	CodeNotJoined          = "not_joined"          // a request before a successful join
	CodeBadSDP             = "bad_sdp"             // the SDP could not be applied
	CodeRateLimited        = "rate_limited"        // too many messages
	CodeCapacity           = "capacity"            // a configured cap is reached (participants per meeting, sockets per address)
	CodeEndpointInUse      = "endpoint_in_use"     // the room's own device is connected; try again later
	CodeInternal           = "internal"            // our fault; logged on the server
	CodeUnavailable        = "unavailable"         // the store or the meeting's signaling node is briefly unreachable; retry
)

// Error is the payload of an error message.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Close codes used when the server ends a socket (4000–4999 are application codes).
const (
	CloseUnauthorized  = 4001 // join failed authentication; the client should not retry as is
	CloseJoinTimeout   = 4002 // no join arrived in time
	CloseRateLimited   = 4003 // too many messages or bad messages
	CloseReplaced      = 4004 // the same endpoint joined again elsewhere
	CloseMeetingEnded  = 4005 // the meeting ended
	CloseEndpointInUse = 4006 // the room's own device holds the endpoint; the client may retry later
)

// Decoding errors.
var (
	ErrEmpty       = errors.New("empty message")
	ErrTooLarge    = errors.New("message too large")
	ErrNotObject   = errors.New("message is not a JSON object")
	ErrVersion     = errors.New("unsupported protocol version")
	ErrMissingKind = errors.New("message has no type")
)

// MaxControlMessageBytes bounds one message on a bridge's control socket, both ways:
// heartbeats carry every endpoint's link figures, and a command carries an endpoint's SDP,
// which JSON may grow up to six times ("<" is written "\u003c"). Signaling never sends a
// larger command (the command fails; the socket stays), so nothing an endpoint sends can
// cost a bridge its control socket.
const MaxControlMessageBytes = 8 << 20

// Decode parses one message envelope of an endpoint's socket. It does not look inside
// Data; use DecodeData.
func Decode(b []byte) (Envelope, error) { return decode(b, MaxMessageBytes) }

// DecodeControl parses one message envelope of a bridge's control socket.
func DecodeControl(b []byte) (Envelope, error) { return decode(b, MaxControlMessageBytes) }

func decode(b []byte, limit int) (Envelope, error) {
	var env Envelope
	if len(bytes.TrimSpace(b)) == 0 {
		return env, ErrEmpty
	}
	if len(b) > limit {
		return env, fmt.Errorf("%w: %d bytes > %d", ErrTooLarge, len(b), limit)
	}
	if c := bytes.TrimSpace(b)[0]; c != '{' {
		return env, ErrNotObject
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return env, fmt.Errorf("decode envelope: %w", err)
	}
	if env.V != Version {
		return env, fmt.Errorf("%w: %d (this server speaks %d)", ErrVersion, env.V, Version)
	}
	if env.Kind == "" {
		return env, ErrMissingKind
	}
	if len(env.ID) > 64 {
		return env, fmt.Errorf("decode envelope: id longer than 64 bytes")
	}
	return env, nil
}

// Validator is implemented by payloads that check their own fields after decoding.
type Validator interface {
	Validate() error
}

// DecodeData parses env.Data strictly (unknown fields are an error) into v and validates it.
func DecodeData(env Envelope, v any) error {
	if len(env.Data) == 0 {
		return fmt.Errorf("%s: missing data", env.Kind)
	}
	dec := json.NewDecoder(bytes.NewReader(env.Data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", env.Kind, err)
	}
	if val, ok := v.(Validator); ok {
		if err := val.Validate(); err != nil {
			return fmt.Errorf("%s: %w", env.Kind, err)
		}
	}
	return nil
}

// Encode builds a message of the given kind with data marshalled as its payload.
func Encode(kind Kind, id string, data any) ([]byte, error) {
	env := Envelope{V: Version, Kind: kind, ID: id}
	if data != nil {
		raw, err := json.Marshal(data)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", kind, err)
		}
		env.Data = raw
	}
	b, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", kind, err)
	}
	return b, nil
}
