package signaling

// Resuming a session on another signaling node without a new ICE/DTLS handshake (issue
// 16). With leases, joined carries a resume token: the participant id, the bridge and
// the peer generation of the endpoint's media, signed with the token key the nodes
// share and bound to the join token. A client whose socket was lost (its node died,
// stopped or gave the meeting up) joins again, anywhere, with the same join token and
// the resume token. The meeting's owner then adopts the endpoint's peer on the bridge as
// it is (adopt_peer: its connections, tracks and subscriptions stay), rebuilds its
// records from what the bridge reports, and answers joined with resumed true: the client
// keeps its connections and its media never stopped. Where the peer is gone (the
// bridge's grace ended, or the bridge died) the join goes on as a new one under the same
// participant id, and the client renegotiates.
//
// Relay links are adopted the same way: the new owner asks both bridges for the link's
// two peers before it would create new ones (openRelay).

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/relayplan"
)

// resumeFor is how long a resume token is honoured (it is also bound to the join token,
// which expires on its own).
const resumeFor = 12 * time.Hour

// resumeClaims is what a resume token says.
type resumeClaims struct {
	Meeting     string       `json:"m"`
	Participant string       `json:"p"`
	Bridge      ids.BridgeID `json:"b"`
	Generation  int          `json:"g"`
	Join        string       `json:"j"` // the first bytes of the join token's SHA-256
	Expires     int64        `json:"x"` // unix seconds
}

func joinDigest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:12])
}

func resumeMAC(key []byte, payload string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("cau-resume\n"))
	mac.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// resumeToken signs the session's current place (bridge, peer generation); empty
// without leases (one node: nowhere else to resume).
func (s *session) resumeToken() string {
	if s.srv.owners == nil || s.bridge == nil {
		return ""
	}
	c := resumeClaims{Meeting: s.claims.Meeting, Participant: s.self.ID, Bridge: s.bridge.ID(),
		Generation: s.peerID.Endpoint.Generation, Join: s.joinDigest, Expires: time.Now().Add(resumeFor).Unix()}
	b, err := json.Marshal(c)
	if err != nil {
		return ""
	}
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + resumeMAC(s.srv.cfg.Keys.Current, payload)
}

// errBadResume refuses a resume token; the join goes on as a new one.
var errBadResume = errors.New("resume token not valid for this join")

// verifyResume checks a resume token against the join it came with: signed with one of
// the token keys, not expired, for the same join token and meeting.
func (srv *Server) verifyResume(tok, joinToken string, claims *auth.Claims, now time.Time) (resumeClaims, error) {
	var c resumeClaims
	payload, mac, ok := strings.Cut(tok, ".")
	if !ok {
		return c, errBadResume
	}
	valid := false
	for _, k := range append([][]byte{srv.cfg.Keys.Current}, srv.cfg.Keys.Previous...) {
		if len(k) > 0 && hmac.Equal([]byte(resumeMAC(k, payload)), []byte(mac)) {
			valid = true
		}
	}
	if !valid {
		return c, errBadResume
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(b, &c) != nil {
		return c, errBadResume
	}
	if now.Unix() > c.Expires || c.Meeting != claims.Meeting || c.Join != joinDigest(joinToken) ||
		c.Participant == "" || c.Generation < 1 {
		return c, errBadResume
	}
	return c, nil
}

// adopter is a bridge that can hand over a peer another node created (a `cau bridge`
// process, over its control socket).
type adopter interface {
	AdoptPeer(ctx context.Context, peer ids.PeerID) (protocol.PeerState, error)
	ReleasePeer(peer ids.PeerID) error
}

// adoptPeer takes over the endpoint's peer that the resume token names, and returns its
// state; s's bridge and peer are set, and its events routed to it, before the bridge is
// asked. On failure nothing is left set.
func (s *session) adoptPeer(ctx context.Context, rc resumeClaims) (Bridge, *protocol.PeerState, error) {
	b := s.srv.focus.byID(rc.Bridge)
	if b == nil {
		return nil, nil, errors.New("the bridge is gone")
	}
	a, ok := b.(adopter)
	if !ok {
		return nil, nil, errors.New("the bridge cannot hand peers over")
	}
	peer := ids.ForEndpoint(ids.ParticipantID(rc.Participant), rc.Generation)
	s.mu.Lock()
	s.setPlace(b, peer)
	s.generation = rc.Generation
	s.mu.Unlock()
	s.srv.router.set(b, peer, s)
	st, err := a.AdoptPeer(ctx, peer)
	if err != nil {
		s.srv.router.clear(b, peer, s)
		s.mu.Lock()
		s.generation = rc.Generation + 1 // a new peer: never the id of one the bridge may still hold
		s.setPlace(nil, ids.ForEndpoint(ids.ParticipantID(rc.Participant), s.generation))
		s.mu.Unlock()
		return nil, nil, err
	}
	return b, &st, nil
}

// adoptState enters what an adopted peer publishes and receives into the meeting's
// records, so that reconcile sees the forwarding as already in place: its streams, and
// its subscriptions to the streams the meeting knows (those of participants not back yet
// are left to the bridge, and entered when they come back and reconcile asks again).
// Caller holds m.mu.
func (m *meeting) adoptState(s *session, st *protocol.PeerState) {
	for _, t := range st.Published {
		if t.Key.Participant != ids.ParticipantID(s.self.ID) {
			continue
		}
		m.streams[t.Key] = &streamInfo{owner: s, origin: s.bridge, source: sourceOf(t.Key, t.Kind), kind: t.Kind}
	}
	for _, sub := range st.Subscriptions {
		if m.streams[sub.Key] == nil {
			continue
		}
		m.fwd[forwardOf(s.bridge.ID(), s.peerID, sub.Key)] = trackOf(sub)
	}
}

// handOver says whether a session closed with code gives its peer up for another node
// to adopt instead of closing it: with leases, when the meeting goes on elsewhere (this
// node lost the meeting, or stops).
func (s *session) handOver(code int) bool {
	return s.srv.owners != nil && code == websocket.CloseServiceRestart
}

func forwardOf(b ids.BridgeID, peer ids.PeerID, key ids.StreamKey) relayplan.Forward {
	return relayplan.Forward{Bridge: b, Peer: peer, Key: key}
}

func trackOf(sub protocol.Subscription) relayplan.Track {
	return relayplan.Track{TrackID: sub.TrackID, StreamID: sub.StreamID}
}

// adoptRelay takes over both ends of a relay link from the node that ran the meeting
// before; false (both ends closed if either was taken) when the link must be made anew.
// Runs on the meeting's op queue.
func (l *relayLink) adoptRelay() bool {
	if l.m.srv.owners == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var adopted []relayEnd
	for _, end := range l.ends() {
		a, ok := end.b.(adopter)
		if !ok {
			break
		}
		if _, err := a.AdoptPeer(ctx, end.peer); err != nil {
			break
		}
		adopted = append(adopted, end)
	}
	if len(adopted) == 2 {
		l.m.srv.log.Info("relay link adopted", "meeting", l.m.id, "child", l.child.ID(), "parent", l.parent.ID())
		return true
	}
	for _, end := range adopted {
		if err := end.b.ClosePeer(end.peer); err != nil {
			l.m.srv.log.Debug("close half-adopted relay", "bridge", end.b.ID(), "err", err)
		}
	}
	return false
}

// handOver stops driving the meeting's bridges, for the node that takes the meeting over:
// the meeting is marked moved away (its sessions' ends are then no disconnects, and
// they change no forwarding), and its relay links are released for that node to adopt.
// Its sessions are closed after, with 1012; each releases its peer (session.close).
func (m *meeting) handOver() {
	m.mu.Lock()
	m.movedAway = true
	links := make([]*relayLink, 0, len(m.relays))
	for e, l := range m.relays {
		links = append(links, l)
		delete(m.relays, e)
	}
	m.mu.Unlock()
	if len(links) == 0 {
		return
	}
	m.ops.push(func() {
		for _, l := range links {
			for _, end := range l.ends() {
				if !m.srv.router.clear(end.b, end.peer, l) {
					continue
				}
				var err error
				if a, ok := end.b.(adopter); ok {
					err = a.ReleasePeer(end.peer)
				} else {
					err = end.b.ClosePeer(end.peer) // this process's own bridge: nobody else can adopt it
				}
				if err != nil {
					m.srv.log.Debug("release relay", "bridge", end.b.ID(), "err", err)
				}
			}
		}
	})
}
