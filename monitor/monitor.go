package monitor

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cau-project/cau/internal/tick"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/rooms"
)

// Link is one endpoint of a live meeting with its link figures, as the monitor samples
// it. The monitor defines it so that it depends on the protocol's figures only, not on
// signaling; app adapts signaling's figures to it.
type Link struct {
	Meeting, Bridge string
	Participant     protocol.Participant
	Joined          time.Time
	// Up and Down are the figures of what the endpoint sends and receives (zero until
	// media flows); Measured says whether its bridge has reported it yet.
	Up, Down protocol.LinkFigures
	Measured bool
	// EstimateBps is the bridge's bandwidth estimate of the endpoint's downlink (0: none),
	// Layers the layer each simulcast stream reaches it at.
	EstimateBps float64
	Layers      []protocol.StreamLayer
	// SIP describes a room's SIP call through the gateway (nil for other endpoints):
	// Up and Down are then the room's RTP with the gateway.
	SIP *protocol.SIPCall
}

// Source is what the monitor samples (app adapts signaling to it).
type Source interface {
	// Links returns every endpoint of every live meeting with its link figures.
	Links() []Link
	// RelayStats returns each live bridge's relay peers' figures: bridge id → stats.
	RelayStats() map[string][]protocol.RelayStat
	// Bridges lists the live bridges: id → site.
	Bridges() map[string]string
}

// Config configures a Monitor. Zero fields take the defaults shown.
type Config struct {
	Source Source
	// Tree is the site registry; nil puts every endpoint under UnknownSite.
	Tree       *rooms.Tree
	Thresholds Thresholds    // DefaultThresholds()
	Interval   time.Duration // between samples: 1 s
	Window     int           // samples per grading window: 5 (5 s at 1 s)
	Hold       time.Duration // a better grade applies after holding this long: 10 s
	// HistoryStep and History shape the sparklines: a point every 5 s over 10 minutes.
	HistoryStep, History time.Duration
	// MaxAlerts bounds the alert list kept (oldest closed ones go first): 200.
	MaxAlerts int
	// ForgetBridges drops a down bridge from the views and metrics after this long: 1 h.
	ForgetBridges time.Duration
	// Store holds the schedule and the roll call for the console's meetings (the
	// pre-meeting check and the live roll call); nil makes those endpoints answer 503.
	Store  rooms.Store
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.Thresholds == (Thresholds{}) {
		c.Thresholds = DefaultThresholds()
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.Window <= 0 {
		c.Window = 5
	}
	c.Window = min(c.Window, maxWindow)
	if c.Hold == 0 {
		c.Hold = 10 * time.Second
	}
	if c.HistoryStep <= 0 {
		c.HistoryStep = 5 * time.Second
	}
	if c.History <= 0 {
		c.History = 10 * time.Minute
	}
	if c.MaxAlerts <= 0 {
		c.MaxAlerts = 200
	}
	if c.ForgetBridges <= 0 {
		c.ForgetBridges = time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Monitor samples a Source, grades every link and publishes a Snapshot after each sample.
//
// Ownership: the sampler (Run, or a test calling sample) is the only writer of the state
// guarded by mu; it holds mu for the whole sample. Readers that need more than the
// published snapshot (Detail, for an endpoint's history) take mu briefly. The published
// snapshot is an atomic pointer to an immutable value; tick is replaced under tickMu.
type Monitor struct {
	cfg Config
	log *slog.Logger

	snap   atomic.Pointer[Snapshot]
	tree   atomic.Pointer[rooms.Tree] // the current registry: cfg.Tree, then SetTree's
	tickMu sync.Mutex
	tick   chan struct{} // closed when a new snapshot is published
	done   chan struct{} // closed when Run returns: streams end
	once   sync.Once

	mu        sync.Mutex // guards everything below
	endpoints map[endpointKey]*endpointState
	relays    map[relayKey]*relayState
	bridges   map[string]*bridgeState
	sites     map[string]*siteState
	alerts    []*Alert // oldest first, bounded by cfg.MaxAlerts
	alertID   int64
	// rttDropped counts refused RTT samples by hop kind (cau_hop_rtt_dropped_total).
	rttDropped map[string]float64
}

// New creates a Monitor; Run starts sampling.
func New(cfg Config) *Monitor {
	cfg.defaults()
	m := &Monitor{cfg: cfg, log: cfg.Logger.With("component", "monitor"), tick: make(chan struct{}),
		done:      make(chan struct{}),
		endpoints: map[endpointKey]*endpointState{}, relays: map[relayKey]*relayState{},
		bridges: map[string]*bridgeState{}, sites: map[string]*siteState{}, rttDropped: map[string]float64{}}
	m.snap.Store(&Snapshot{Sites: map[string]*SiteView{}, Endpoints: map[Grade]int{}})
	m.tree.Store(cfg.Tree)
	return m
}

// Tree is the site registry the monitor labels with (nil if none).
func (m *Monitor) Tree() *rooms.Tree { return m.tree.Load() }

// SetTree installs the registry after an edit through the REST API: the console's site
// list and the labels of the next sample follow it. Safe from any goroutine.
func (m *Monitor) SetTree(t *rooms.Tree) { m.tree.Store(t) }

// Run samples every Interval until ctx ends, then ends the console streams.
func (m *Monitor) Run(ctx context.Context) {
	defer m.once.Do(func() { close(m.done) })
	tick.Every(ctx.Done(), m.cfg.Interval, m.sample)
}

// Done is closed once Run has returned.
func (m *Monitor) Done() <-chan struct{} { return m.done }

// Snapshot returns the latest published state.
func (m *Monitor) Snapshot() *Snapshot { return m.snap.Load() }

// Next returns a channel closed when the snapshot after the current one is published.
func (m *Monitor) Next() <-chan struct{} {
	m.tickMu.Lock()
	defer m.tickMu.Unlock()
	return m.tick
}

// publish stores a new snapshot and wakes the streams waiting for it.
func (m *Monitor) publish(s *Snapshot) {
	m.snap.Store(s)
	m.tickMu.Lock()
	close(m.tick)
	m.tick = make(chan struct{})
	m.tickMu.Unlock()
}

// sample reads the source once, updates every grade and publishes a snapshot.
func (m *Monitor) sample(now time.Time) {
	start := time.Now()
	// The source takes signaling's locks: read it before taking ours.
	links := m.cfg.Source.Links()
	relayStats := m.cfg.Source.RelayStats()
	live := m.cfg.Source.Bridges()

	m.mu.Lock()
	defer m.mu.Unlock()
	snap := &Snapshot{At: now, Sites: map[string]*SiteView{}, Endpoints: map[Grade]int{}}
	m.sampleBridges(now, live)
	m.sampleEndpoints(now, links)
	m.sampleRelays(now, relayStats)
	snap.Relays = m.relayViews()
	m.gradeEndpoints(now, snap.Relays)
	snap.Bridges = m.bridgeViews(links)
	m.aggregateSites(now, snap)
	snap.Hops = m.hopViews(snap)
	snap.RTTDropped = map[string]float64{HopAccess: m.rttDropped[HopAccess], HopRelay: m.rttDropped[HopRelay]}
	for _, e := range m.endpoints {
		snap.Endpoints[e.grade]++
	}
	snap.Alerts = m.alertsNewestFirst()
	snap.SampleDuration = time.Since(start)
	m.publish(snap)
}

// site returns the registry id and level for a claimed site id.
func (m *Monitor) site(id string) (string, string) {
	if m.cfg.Tree != nil {
		if s, ok := m.cfg.Tree.Site(id); ok {
			return s.ID, string(s.Level)
		}
	}
	return UnknownSite, UnknownSite
}

// siteName is the registry name of a site id (the id itself if unknown).
func (m *Monitor) siteName(id string) string {
	if m.cfg.Tree == nil || id == UnknownSite {
		return id
	}
	return m.cfg.Tree.Name(id)
}

// bridgeState is what the monitor remembers of a bridge. Owned by the sampler.
type bridgeState struct {
	id, site string // site: registry id or UnknownSite
	up       bool
	since    time.Time
	alert    *Alert
}

// sampleBridges notes bridges that registered, went down, or came back.
func (m *Monitor) sampleBridges(now time.Time, live map[string]string) {
	for id, claimed := range live {
		site, _ := m.site(claimed)
		b := m.bridges[id]
		if b == nil {
			b = &bridgeState{id: id, since: now}
			m.bridges[id] = b
		} else if !b.up {
			b.since = now
			m.closeAlert(b.alert, now, "bridge back")
			b.alert = nil
			m.log.Info("bridge back", "bridge", id)
		}
		b.up, b.site = true, site
	}
	for id, b := range m.bridges {
		if _, ok := live[id]; ok {
			continue
		}
		if b.up {
			b.up, b.since = false, now
			b.alert = m.openAlert(&Alert{Kind: "bridge", Subject: id, Name: id, Grade: GradeLost,
				Reason: "bridge down (site " + b.site + ")", Start: now})
			continue
		}
		if now.Sub(b.since) >= m.cfg.ForgetBridges {
			delete(m.bridges, id)
		}
	}
}

// bridgeViews summarises every known bridge, with its load from the endpoint links.
func (m *Monitor) bridgeViews(links []Link) []BridgeView {
	byID := map[string]*BridgeView{}
	out := make([]BridgeView, 0, len(m.bridges))
	for _, b := range m.bridges {
		out = append(out, BridgeView{ID: b.id, Site: b.site, Up: b.up, Since: b.since})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	for i := range out {
		byID[out[i].ID] = &out[i]
		out[i].Parent = m.parentBridge(out[i].ID)
	}
	for _, l := range links {
		if v := byID[l.Bridge]; v != nil {
			v.Endpoints++
			v.StreamsIn += l.Up.Streams
			v.StreamsOut += l.Down.Streams
		}
	}
	peers := map[[2]string]bool{}
	for k := range m.relays {
		peers[[2]string{k.bridge, k.peer}] = true
	}
	for p := range peers {
		if v := byID[p[0]]; v != nil {
			v.RelayLinks++
		}
	}
	return out
}
