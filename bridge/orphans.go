package bridge

import (
	"sync"
	"time"

	"github.com/cau-project/cau/ids"
)

// Orphans holds the peers of lost control connections while they keep forwarding
// (ClientConfig.Grace), for every connection of one bridge process to share. A relay
// peer that another connection creates under the same id replaces its orphan at once:
// the UDP mux routes a remote address to one connection, so two relay connections
// between the same two bridges cannot both carry media.
type Orphans struct {
	mu    sync.Mutex // guards peers
	peers map[ids.PeerID]orphan
}

type orphan struct {
	agent *Agent
	timer *time.Timer
}

// NewOrphans returns an empty set.
func NewOrphans() *Orphans { return &Orphans{peers: map[ids.PeerID]orphan{}} }

// keep lets the agent's peers forward for grace, then closes those still there.
func (o *Orphans) keep(a *Agent, peers []ids.PeerID, grace time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, id := range peers {
		if old, ok := o.peers[id]; ok { // an orphan of an earlier loss: the newer one wins
			old.timer.Stop()
			go func() { _ = old.agent.ClosePeer(id) }()
		}
		o.peers[id] = orphan{agent: a, timer: time.AfterFunc(grace, func() { o.close(id, a) })}
	}
}

// close closes the orphan id of agent a, if it is still held.
func (o *Orphans) close(id ids.PeerID, a *Agent) {
	o.mu.Lock()
	cur, ok := o.peers[id]
	if ok && cur.agent == a {
		delete(o.peers, id)
	}
	o.mu.Unlock()
	if ok && cur.agent == a {
		cur.timer.Stop()
		_ = a.ClosePeer(id)
	}
}

// replaced closes the orphan with id, if any, before a new peer takes the id.
func (o *Orphans) replaced(id ids.PeerID) {
	if o == nil || !id.IsRelay() {
		return
	}
	o.mu.Lock()
	cur, ok := o.peers[id]
	o.mu.Unlock()
	if ok {
		o.close(id, cur.agent)
	}
}
