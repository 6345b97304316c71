package protocol

import "github.com/cau-project/cau/ids"

// The bridge control protocol runs between signaling and each bridge process over a
// WebSocket at /bridge, in the same envelope as the endpoint protocol. Signaling drives;
// the bridge executes and reports. See docs/cascade.md.

// Bridge → signaling kinds.
const (
	KindBridgeRegister  Kind = "register"       // first message: who and where the bridge is
	KindBridgeHeartbeat Kind = "heartbeat"      // every second: load
	KindPeerOffer       Kind = "peer_offer"     // a peer's subscriber offer, for its remote side
	KindPeerCandidate   Kind = "peer_candidate" // a peer's local ICE candidate
	KindTrackPublished  Kind = "track"          // a peer started publishing a stream
	KindTrackEnded      Kind = "track_ended"    // a published stream ended
	KindPeerFailed      Kind = "peer_failed"    // a peer's connection failed; the bridge closed it
	KindRelayStats      Kind = "relay_stats"    // per relay peer counters, every few seconds
)

// Signaling → bridge kinds. Replies to requests reuse KindAnswer and KindError; a
// create_peer with an id is acknowledged by an empty answer.
const (
	KindBridgeRegistered Kind = "registered" // the answer to register
	KindCreatePeer       Kind = "create_peer"
	KindPeerSDP          Kind = "peer_sdp" // an offer (answered with KindAnswer) or an answer for a peer
	KindAddICE           Kind = "peer_ice" // a remote ICE candidate for a peer
	KindSubscribe        Kind = "subscribe"
	KindUnsubscribe      Kind = "unsubscribe"
	KindClosePeer        Kind = "close_peer"
	// KindAdoptPeer hands a peer over to the connection that sends it, as it is (its
	// connections, tracks and subscriptions stay): the meeting's new owner takes the peer
	// of an endpoint that resumed there, or a relay peer, from a lost node. Answered with
	// KindAnswer carrying a PeerState, or an error with code CodeUnknownPeer.
	KindAdoptPeer Kind = "adopt_peer"
	// KindReleasePeer gives a peer up without closing it: it forwards on for the bridge's
	// grace, for another node to adopt (a node that lost a meeting's lease, or stops).
	KindReleasePeer Kind = "release_peer"
	// KindBridgeLayerCap caps the simulcast layer a peer's video subscriptions take
	// (BridgeLayerCap): a room codec behind the SIP gateway that decodes no larger picture.
	KindBridgeLayerCap Kind = "layer_cap"
)

// BridgeLayerCap caps every video subscription of Peer, now and later, at MaxLayer (0 the
// low layer … 2 the top; 2 lifts the cap). It holds until changed or the peer closes.
type BridgeLayerCap struct {
	Peer     ids.PeerID `json:"peer"`
	MaxLayer int        `json:"max_layer"`
}

// PeerID is the peer the command is about.
func (m BridgeLayerCap) PeerID() ids.PeerID { return m.Peer }

// CodeUnknownPeer answers a command for a peer the bridge does not have, or that belongs
// to another signaling node's connection.
const CodeUnknownPeer = "unknown_peer"

// PeerState is what a peer publishes and receives on its bridge: the answer to
// adopt_peer, from which the adopting node rebuilds its records of the peer.
type PeerState struct {
	Published     []TrackEvent   `json:"published,omitempty"`
	Subscriptions []Subscription `json:"subscriptions,omitempty"`
}

// BridgeRegister announces a bridge.
type BridgeRegister struct {
	ID       ids.BridgeID `json:"id"`
	Site     ids.SiteID   `json:"site"`
	Capacity int          `json:"capacity,omitempty"` // endpoints it is sized for; 0 = unknown
	// BeatMillis is how often (ms) the bridge sends a WebSocket ping after registering:
	// its liveness, apart from the heavier heartbeat. Signaling declares a bridge that
	// announced it down after a short silence (control.DefaultTimeout), one that did not
	// after the 3 s heartbeat timeout. 0: no beats.
	BeatMillis int `json:"beat_ms,omitempty"`
}

// BridgeHeartbeat reports a bridge's load.
type BridgeHeartbeat struct {
	Peers            int         `json:"peers"`
	UpTracks         int         `json:"up_tracks"`
	DownTracks       int         `json:"down_tracks"`
	PacketsForwarded uint64      `json:"packets_forwarded"`
	Relays           []RelayStat `json:"relays,omitempty"`
	Endpoints        []PeerStat  `json:"endpoints,omitempty"` // endpoint peers
	// Full says the bridge has as many endpoints as it may serve: signaling places new
	// ones elsewhere.
	Full bool `json:"full,omitempty"`
}

// PeerRef names a peer on a bridge.
type PeerRef struct {
	Peer ids.PeerID `json:"peer"`
}

// PeerID is the peer the command is about.
func (m PeerRef) PeerID() ids.PeerID { return m.Peer }

// PeerSDP carries a description for a peer. Type "offer" asks for an answer.
type PeerSDP struct {
	Peer ids.PeerID `json:"peer"`
	Type string     `json:"type"` // "offer" or "answer"
	SDP  string     `json:"sdp"`
	// Keys names the streams an endpoint's offer publishes: msid track id → stream key.
	Keys map[string]ids.StreamKey `json:"keys,omitempty"`
}

// PeerID is the peer the command is about.
func (m PeerSDP) PeerID() ids.PeerID { return m.Peer }

// PeerICE carries an ICE candidate of a peer's connection.
type PeerICE struct {
	Peer      ids.PeerID   `json:"peer"`
	Target    Target       `json:"target"`
	Candidate ICECandidate `json:"candidate"`
}

// PeerID is the peer the command is about.
func (m PeerICE) PeerID() ids.PeerID { return m.Peer }

// Subscription asks a bridge to forward a stream to a peer (or stop).
type Subscription struct {
	Peer     ids.PeerID    `json:"peer"`
	Key      ids.StreamKey `json:"key"`
	TrackID  string        `json:"track_id,omitempty"`
	StreamID string        `json:"stream_id,omitempty"`
	// Meeting is the meeting the stream belongs to, for its Last-N selection; empty from
	// an older signaling (the stream is then always forwarded).
	Meeting ids.MeetingID `json:"meeting,omitempty"`
}

// PeerID is the peer the command is about.
func (m Subscription) PeerID() ids.PeerID { return m.Peer }

// TrackEvent reports a stream appearing or ending on a bridge.
type TrackEvent struct {
	Peer ids.PeerID    `json:"peer"`
	Key  ids.StreamKey `json:"key"`
	Kind string        `json:"kind,omitempty"` // audio or video
}

// PeerFailed reports a peer the bridge closed.
type PeerFailed struct {
	Peer   ids.PeerID `json:"peer"`
	Reason string     `json:"reason"`
}

// RelayStat is one relay peer's counters as seen by its bridge.
type RelayStat struct {
	Peer        ids.PeerID `json:"peer"` // a relay peer
	PacketsSent uint64     `json:"packets_sent"`
	BytesSent   uint64     `json:"bytes_sent"`
	PacketsRecv uint64     `json:"packets_received"`
	StreamsSent int        `json:"streams_sent"`
	// StreamsPaused are the streams among StreamsSent held back now (Last-N, or nobody
	// beyond the link needs them: sfu/need.go): the link carries StreamsSent − StreamsPaused.
	StreamsPaused int `json:"streams_paused,omitempty"`
	StreamsRecv   int `json:"streams_received"`
	// From the far bridge's receiver reports on what this one sends (worst stream):
	RTTMs    float64 `json:"rtt_ms"`
	LossPct  float64 `json:"loss_pct"`
	JitterMs float64 `json:"jitter_ms"`
	// BitrateBps is the send rate since the previous report.
	BitrateBps float64 `json:"bitrate_bps"`
	// Hop is what this bridge sends the peer, measured on the relay connection alone
	// (upstream loss excluded); HopIn what it receives from the peer. Nil from bridges
	// that predate them.
	Hop   *HopFigures `json:"hop,omitempty"`
	HopIn *HopFigures `json:"hop_in,omitempty"`
	// EstimateBps is the link's bandwidth estimate for what this bridge sends (TWCC,
	// package sfu/bwe), 0 while the link has no simulcast stream; Layers the layer of each
	// simulcast stream it carries.
	EstimateBps float64       `json:"estimate_bps,omitempty"`
	Layers      []StreamLayer `json:"layers,omitempty"`
}

// HopFigures are one direction of one hop (an endpoint's access link, or a relay link),
// measured on that hop's own transport by its bridge: cumulative counters since the
// connection began, which the monitor windows. Loss comes from the receiving end's TWCC
// feedback, whose sequence numbers each hop's sender stamps afresh, so it is this hop's
// loss only; RTT from receiver reports matched to the sender reports they answer.
type HopFigures struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	// Reported packets had a status in the TWCC feedback, Lost of them missing; zero
	// Reported: the receiving end sends no TWCC feedback.
	Reported uint64  `json:"reported"`
	Lost     uint64  `json:"lost"`
	JitterMs float64 `json:"jitter_ms"`
	// RTT samples on the path (the same both ways), validated; RTTDropped were refused.
	RTTSumMs   float64 `json:"rtt_sum_ms"`
	RTTSamples uint64  `json:"rtt_samples"`
	RTTDropped uint64  `json:"rtt_dropped"`
	// RTTMaxMs is the largest sample of the last 5 to 10 s.
	RTTMaxMs float64 `json:"rtt_max_ms"`
}

// LinkFigures describe one direction of an endpoint's link with its bridge.
type LinkFigures struct {
	Streams    int     `json:"streams"`
	Packets    uint64  `json:"packets"`
	Bytes      uint64  `json:"bytes"`
	LossPct    float64 `json:"loss_pct"`
	JitterMs   float64 `json:"jitter_ms"`
	RTTMs      float64 `json:"rtt_ms"`
	BitrateBps float64 `json:"bitrate_bps"`
	// LastPacketAgeMs is how long ago the latest packet went or came; -1 if none yet.
	LastPacketAgeMs int64 `json:"last_packet_age_ms"`
	// Hop is this direction on the endpoint's own link alone (see HopFigures); nil from
	// bridges that predate it.
	Hop *HopFigures `json:"hop,omitempty"`
}

// PeerStat is an endpoint peer's link as its bridge measures it: Up is what the endpoint
// sends (loss and jitter measured on arrival), Down what it receives (from its receiver
// reports).
type PeerStat struct {
	Peer ids.PeerID  `json:"peer"`
	Up   LinkFigures `json:"up"`
	Down LinkFigures `json:"down"`
	// EstimateBps is the bandwidth estimate of the endpoint's downlink (what the bridge
	// may send it), 0 while it receives no simulcast stream; Layers the layer each
	// simulcast stream reaches it at.
	EstimateBps float64       `json:"estimate_bps,omitempty"`
	Layers      []StreamLayer `json:"layers,omitempty"`
}
