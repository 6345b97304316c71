package signaling

// Bridges' caps on endpoints (issue 12, finding 4): a bridge refuses endpoint peers past
// its maximum (bridge.ErrBridgeFull); its heartbeats say when it is full. Signaling then
// places new endpoints on the next bridge up the tree, and refuses the join with
// "capacity" only when every bridge that could serve the site is full.

import (
	"context"
	"errors"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/bridge"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
)

// fullHold is how long a bridge that said it is full is passed over: a remote one says it
// again in its next heartbeat (every second) while it stays full; the local one, which
// has no heartbeat, is tried again after it.
const fullHold = 2 * time.Second

// errBridgesFull: every bridge that could take the endpoint is full.
var errBridgesFull = errors.New("every bridge that can serve this site is full")

// fullness passes over full bridges during one placement and remembers whether it did.
// A nil *fullness passes over none (relay planning: a full bridge still relays).
type fullness struct {
	now     time.Time
	skipped bool
}

func (f *fullness) skips(e *bridgeEntry) bool {
	if f == nil || !f.now.Before(e.fullUntil) {
		return false
	}
	f.skipped = true
	return true
}

// markFull passes over a bridge that refused a peer because it is full, for fullHold.
func (f *focus) markFull(id ids.BridgeID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.bridges[id]; e != nil {
		e.fullUntil = time.Now().Add(fullHold)
	}
}

// peerConfirmer is a bridge whose CreatePeer does not wait for the bridge (a remote
// one): CreatePeerWait does, so a join learns a full bridge's refusal at once.
type peerConfirmer interface {
	CreatePeerWait(ctx context.Context, peer ids.PeerID) error
}

// maxPlacements bounds how many bridges one join tries (each refusal marks its bridge
// full, so each try is another bridge).
const maxPlacements = 8

// placePeer places the joining endpoint on a bridge and creates its peer there; a bridge
// that refuses it for being full is passed over for the next. Reader goroutine, during
// join: s.peerID is set, s is not in the meeting yet.
func (s *session) placePeer(ctx context.Context, site ids.SiteID) (Bridge, error) {
	for range maxPlacements {
		b, err := s.srv.focus.place(site)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.setPlace(b, s.peerID)
		s.mu.Unlock()
		s.srv.router.set(b, s.peerID, s)
		if c, ok := b.(peerConfirmer); ok {
			err = c.CreatePeerWait(ctx, s.peerID)
		} else {
			err = b.CreatePeer(s.peerID)
		}
		if err == nil {
			s.applyPeerOptions(b, s.peerID)
			return b, nil
		}
		s.srv.router.set(b, s.peerID, nil)
		s.mu.Lock()
		s.setPlace(nil, s.peerID) // nothing to close there
		s.mu.Unlock()
		if !errors.Is(err, bridge.ErrBridgeFull) {
			return nil, err
		}
		s.srv.focus.markFull(b.ID())
		s.log.Warn("bridge full; placing the endpoint on another", "bridge", b.ID())
	}
	return nil, errBridgesFull
}

// refuseFull answers a join no bridge could take, counted as the bridge_peers limit.
func (s *session) refuseFull(envID string) error {
	s.log.Warn("join refused: every bridge that can serve this site is full")
	s.srv.cfg.Metrics.limited(limitBridgePeers)
	s.reject(envID, protocol.CodeCapacity, "every bridge that can serve this site is full; try again later")
	return &closeError{code: websocket.CloseTryAgainLater, reason: "bridges full"}
}
