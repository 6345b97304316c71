package monitor

import (
	"encoding/json"
	"math"
	"sync"
	"time"
)

// UnknownSite is the site (and level) label of endpoints and bridges whose site is not
// in the registry: labels never carry client input.
const UnknownSite = "unknown"

// Snapshot is the monitor's state after one sample. It is immutable once published, so
// the Prometheus collector and the console's streams read it without a lock.
type Snapshot struct {
	At time.Time
	// Sites holds every site with an endpoint, or with a bridge whose relay link up the
	// tree is live, keyed by registry id (UnknownSite for the rest).
	Sites  map[string]*SiteView
	Relays []RelayView // directed relay links, by bridge then peer
	// Hops are the tree's hops (each site's access links and uplink relay link), each
	// with its own figures; in no particular order.
	Hops []HopView
	// RTTDropped counts, by hop kind, the RTT samples the bridges refused since the
	// process started (a report answering no sender report of theirs, or impossible).
	RTTDropped map[string]float64
	Bridges    []BridgeView // live bridges and those down for less than an hour, by id
	// Alerts, newest first, at most Config.MaxAlerts.
	Alerts []Alert
	// Counters holds every site's cumulative packet counters since the process started,
	// including sites with no endpoint now (a counter must not restart).
	Counters map[string]SiteCounters
	// Endpoints counts endpoints by grade ("unknown" included).
	Endpoints map[Grade]int
	// SampleDuration is how long the sample took.
	SampleDuration time.Duration

	streamOnce sync.Once
	stream     []byte // the console's stream event, encoded once
}

// SiteView is one site's aggregate. A site's grade is the worst of its endpoints' and of
// the relay link between its bridge and the bridge above (its uplink).
type SiteView struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Level string `json:"level"`
	Grade Grade  `json:"grade"`
	// PathGrade is the worst grade of the relay links from this site's bridges to the top
	// (unknown when the media crosses none).
	PathGrade Grade `json:"path_grade"`
	// UplinkGrade is the grade of the relay link above a bridge at this site (unknown if none).
	UplinkGrade Grade `json:"uplink_grade"`
	Endpoints   int   `json:"endpoints"`
	// Up and Down are the worst figures among the site's endpoints (highest RTT, jitter
	// and loss), except BitrateBps and Streams, which are sums.
	Up    Figures `json:"up"`
	Down  Figures `json:"down"`
	RTTMs float64 `json:"rtt_ms"`
	MOS   float64 `json:"mos"` // lowest E-model estimate among the endpoints (0 if none)
	// Reasons explain the grade (the worst endpoint's or link's reasons).
	Reasons []string `json:"reasons,omitempty"`
	// AffectedBy names the hop upstream whose loss the site's endpoints receive (e.g.
	// "relay central→d1"): marked here, counted against that hop, not this site.
	AffectedBy string   `json:"affected_by,omitempty"`
	Bridges    []string `json:"bridges,omitempty"`
	// EstimateBps is the lowest bandwidth estimate among the site's endpoints' downlinks
	// (0: none has one yet); Layers counts the simulcast streams they receive by layer.
	EstimateBps float64     `json:"estimate_bps,omitempty"`
	Layers      LayerCounts `json:"layers"`
	// Cumulative packets and (estimated) lost packets by direction, for the counters;
	// they never decrease while the process runs.
	PacketsUp, PacketsDown, LostUp, LostDown float64 `json:"-"`
}

// RelayView is one direction of a relay link between two bridges, summed over meetings:
// what Bridge sends to Peer, as Peer's receiver reports describe it.
type RelayView struct {
	Bridge    string `json:"bridge"`
	Peer      string `json:"peer"`
	Site      string `json:"site"`
	PeerSite  string `json:"peer_site"`
	Direction string `json:"direction"` // "up" towards the top of the tree, else "down"
	Meetings  int    `json:"meetings"`
	Grade     Grade  `json:"grade"`
	// RawGrade is this sample's grade before hysteresis (worst over meetings).
	RawGrade Grade `json:"raw_grade"`
	Figures
	Reasons []string `json:"reasons,omitempty"`
	// EstimateBps is the link's bandwidth estimate for this direction (the lowest over
	// meetings; 0: none yet); Layers counts the simulcast streams it carries by layer.
	EstimateBps float64     `json:"estimate_bps,omitempty"`
	Layers      LayerCounts `json:"layers"`
}

// BridgeView is one bridge's load as the monitor sees it.
type BridgeView struct {
	ID         string    `json:"id"`
	Site       string    `json:"site"`
	Up         bool      `json:"up"`
	Since      time.Time `json:"since"` // registered, or went down
	Endpoints  int       `json:"endpoints"`
	StreamsIn  int       `json:"streams_in"`  // from its endpoints
	StreamsOut int       `json:"streams_out"` // to its endpoints
	RelayLinks int       `json:"relay_links"` // peers it has relay links with
	Parent     string    `json:"parent,omitempty"`
}

// Alert is a site that went poor or lost, or a bridge that went down, and when it ended.
type Alert struct {
	ID      int64     `json:"id"`
	Kind    string    `json:"kind"`    // "site" or "bridge"
	Subject string    `json:"subject"` // site or bridge id
	Name    string    `json:"name"`
	Level   string    `json:"level,omitempty"`
	Grade   Grade     `json:"grade"` // worst reached
	Reason  string    `json:"reason,omitempty"`
	Start   time.Time `json:"start"`
	// End is zero while the alert is open; EndReason says why it closed ("recovered",
	// "no endpoint left", "bridge back").
	End       time.Time `json:"end,omitzero"`
	EndReason string    `json:"end_reason,omitempty"`
}

// Open reports whether the alert has not ended.
func (a Alert) Open() bool { return a.End.IsZero() }

// siteBrief is a site in the console's stream: just what colours and labels the tree.
type siteBrief struct {
	Grade     Grade   `json:"g"`
	PathGrade Grade   `json:"p"`
	Endpoints int     `json:"n"`
	RTTMs     float64 `json:"rtt"`
	LossPct   float64 `json:"loss"`
	JitterMs  float64 `json:"jit"`
	Why       string  `json:"why,omitempty"`
	// EstimateBps and Layers: the site's lowest downlink estimate and its video streams
	// by layer (low, middle, top, paused); omitted while it receives no simulcast.
	EstimateBps float64 `json:"est,omitempty"`
	Layers      *[4]int `json:"ly,omitempty"`
}

// streamEvent is one event of /api/v1/monitor/stream.
type streamEvent struct {
	At      time.Time            `json:"t"`
	Sites   map[string]siteBrief `json:"sites"`
	Alerts  []Alert              `json:"alerts"`
	Bridges []BridgeView         `json:"bridges"`
}

// maxStreamAlerts bounds the alerts each stream event repeats.
const maxStreamAlerts = 100

// streamJSON returns the snapshot encoded as a stream event, encoding it on first use.
func (s *Snapshot) streamJSON() []byte {
	s.streamOnce.Do(func() {
		ev := streamEvent{At: s.At, Sites: make(map[string]siteBrief, len(s.Sites)), Alerts: s.Alerts,
			Bridges: s.Bridges}
		if len(ev.Alerts) > maxStreamAlerts {
			ev.Alerts = ev.Alerts[:maxStreamAlerts]
		}
		for id, v := range s.Sites {
			b := siteBrief{Grade: v.Grade, PathGrade: v.PathGrade, Endpoints: v.Endpoints, RTTMs: round1(v.RTTMs),
				LossPct: round1(max(v.Up.LossPct, v.Down.LossPct)), JitterMs: round1(max(v.Up.JitterMs, v.Down.JitterMs))}
			if len(v.Reasons) > 0 {
				b.Why = v.Reasons[0]
			}
			b.EstimateBps = math.Round(v.EstimateBps)
			if v.Layers.Total() > 0 {
				ly := v.Layers.values()
				b.Layers = &ly
			}
			ev.Sites[id] = b
		}
		b, err := json.Marshal(ev)
		if err != nil {
			b = []byte(`{"error":"encode"}`) // cannot happen: the types are plain
		}
		s.stream = b
	})
	return s.stream
}

func round1(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }
