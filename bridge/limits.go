package bridge

import (
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cau-project/cau/ids"
)

// DefaultMaxPeers bounds the endpoints one bridge serves (issue 12, finding 4). A
// province's bridge carries a few hundred sites; past that a bridge's CPU, not a client,
// should decide, so the cap is where signaling moves endpoints to another bridge rather
// than let one bridge degrade every meeting it carries.
const DefaultMaxPeers = 500

// ErrBridgeFull refuses a peer over the bridge's cap; a remote bridge reports it with
// protocol.CodeCapacity, or a peer_failed whose reason is FullReason.
var ErrBridgeFull = errors.New("bridge: as many endpoints as it may serve")

// FullReason is the reason of a peer_failed for a peer the bridge refused because it is
// full (a create_peer signaling did not wait for).
const FullReason = "bridge full"

// LimitMetrics count what the bridge's caps refuse.
type LimitMetrics struct {
	PeersRefused prometheus.Counter
}

// NewLimitMetrics creates the bridge's cap counters and registers them with reg.
func NewLimitMetrics(reg prometheus.Registerer) (*LimitMetrics, error) {
	m := &LimitMetrics{PeersRefused: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cau_bridge_peers_refused_total",
		Help: "Endpoint peers the bridge refused because it had as many as it may serve."})}
	if err := reg.Register(m.PeersRefused); err != nil {
		return nil, err
	}
	return m, nil
}

// PeerCount counts a bridge process's endpoint peers across its agents: a bridge
// registered with several signaling nodes has one agent per node, and its cap holds for
// the process, not per connection (or N nodes could place N × cap endpoints on it). The
// zero value is ready; its lock is a leaf.
type PeerCount struct {
	mu sync.Mutex
	n  int
}

// NewPeerCount makes the count a bridge process's connections share.
func NewPeerCount() *PeerCount { return &PeerCount{} }

func (c *PeerCount) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *PeerCount) add(d int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += d
}

// SharePeerCount makes the agent count its endpoint peers in c, with the other agents of
// its process. Call it before the agent is used.
func (a *Agent) SharePeerCount(c *PeerCount) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.count = c
}

// peerLimit is an agent's cap on endpoint peers. Relay peers are not counted: their
// number follows the bridge tree and the meetings, and a full bridge still needs its
// links to serve the endpoints it has.
type peerLimit struct {
	max     int // 0: DefaultMaxPeers; < 0: no cap
	metrics *LimitMetrics
}

// SetMaxPeers caps the endpoint peers the agent holds (0: DefaultMaxPeers; -1: no cap);
// m, if not nil, counts refusals. Call it before the agent is used.
func (a *Agent) SetMaxPeers(max int, m *LimitMetrics) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.limit = peerLimit{max: max, metrics: m}
}

// MaxPeers is the agent's cap on endpoint peers (-1: none).
func (a *Agent) MaxPeers() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.limit.effective()
}

func (l peerLimit) effective() int {
	if l.max == 0 {
		return DefaultMaxPeers
	}
	return max(l.max, -1)
}

// endpoints counts the endpoint peers of the agent's process. Caller holds a.mu.
func (a *Agent) endpoints() int { return a.count.get() }

// counted records that endpoint peer id entered (d 1) or left (d -1) a.peers. Caller
// holds a.mu.
func (a *Agent) counted(id ids.PeerID, d int) {
	if !id.IsRelay() {
		a.count.add(d)
	}
}

// Full reports whether the agent holds as many endpoint peers as it may (heartbeats
// carry it, so signaling stops placing endpoints here).
func (a *Agent) Full() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	max := a.limit.effective()
	return max >= 0 && a.endpoints() >= max
}

// admit refuses a new endpoint peer over the cap, logging and counting it. Caller holds
// a.mu.
func (a *Agent) admit(id ids.PeerID) error {
	max := a.limit.effective()
	if id.IsRelay() || max < 0 || a.endpoints() < max {
		return nil
	}
	a.log.Warn("peer refused: bridge full", "peer", id.String(), "limit", max)
	if m := a.limit.metrics; m != nil {
		m.PeersRefused.Inc()
	}
	return fmt.Errorf("create peer %s: %w (%d)", id, ErrBridgeFull, max)
}
