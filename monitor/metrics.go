package monitor

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names the collector exports (docs/monitoring.md lists them with their labels).
// Every per-site series is labelled site and level from the registry (UnknownSite
// otherwise); relay and bridge series by bridge ids, which only registered bridges have.
// Per-endpoint detail stays in the console: it would be an unbounded label.
var (
	siteLabels    = []string{"site", "level"}
	siteDirLabels = []string{"site", "level", "direction"}
	relayLabels   = []string{"bridge", "peer_bridge", "site", "peer_site", "direction"}
	bridgeLabels  = []string{"bridge", "site"}
	hopLabels     = []string{"site", "level", "kind", "direction"}

	descSiteEndpoints = prometheus.NewDesc("cau_site_endpoints",
		"Endpoints connected at the site.", siteLabels, nil)
	descSiteGrade = prometheus.NewDesc("cau_site_grade",
		"Link grade of the site (worst of its endpoints and its bridge's uplink): 0 good, 1 fair, 2 poor, 3 lost. Absent while unknown.", siteLabels, nil)
	descSiteUplinkGrade = prometheus.NewDesc("cau_site_uplink_grade",
		"Grade of the relay link above the bridge at the site: 0 good … 3 lost.", siteLabels, nil)
	descSiteRTT = prometheus.NewDesc("cau_site_rtt_seconds",
		"Highest round-trip time among the site's endpoints (RTCP, 5 s window).", siteLabels, nil)
	descSiteJitter = prometheus.NewDesc("cau_site_jitter_seconds",
		"Highest RFC 3550 interarrival jitter among the site's endpoints (5 s window); up = what endpoints send, down = what they receive.", siteDirLabels, nil)
	descSiteLoss = prometheus.NewDesc("cau_site_loss_ratio",
		"Highest packet loss among the site's endpoints (5 s window), 0..1.", siteDirLabels, nil)
	descSiteBitrate = prometheus.NewDesc("cau_site_bitrate_bits_per_second",
		"Media bitrate of the site's endpoints (sum, 5 s window).", siteDirLabels, nil)
	descSiteMOS = prometheus.NewDesc("cau_site_mos",
		"Lowest E-model (ITU-T G.107) MOS estimate for audio among the site's endpoints.", siteLabels, nil)
	descSitePackets = prometheus.NewDesc("cau_site_packets_total",
		"RTP packets of the site's endpoints: up = received from them by their bridge, down = sent to them.", siteDirLabels, nil)
	descSiteLost = prometheus.NewDesc("cau_site_packets_lost_total",
		"Packets lost on the site's endpoint links: up counted from sequence gaps after repair, down estimated from receiver reports.", siteDirLabels, nil)

	descSiteEstimate = prometheus.NewDesc("cau_site_bandwidth_estimate_bits_per_second",
		"Lowest bandwidth estimate (TWCC, per link) among the downlinks of the site's endpoints that receive simulcast video.", siteLabels, nil)
	descSiteLayers = prometheus.NewDesc("cau_site_video_streams",
		"Simulcast video streams the site's endpoints receive, by the layer forwarded (low, middle, top) or paused by Last-N.", append(slices.Clone(siteLabels), "layer"), nil)
	descRelayEstimate = prometheus.NewDesc("cau_relay_bandwidth_estimate_bits_per_second",
		"Bandwidth estimate (TWCC) of what bridge sends to peer_bridge over their relay link (lowest over meetings).", relayLabels, nil)
	descRelayLayers = prometheus.NewDesc("cau_relay_video_streams",
		"Simulcast video streams bridge sends to peer_bridge, by the layer forwarded (low, middle, top) or paused by Last-N.", append(slices.Clone(relayLabels), "layer"), nil)

	descRelayGrade = prometheus.NewDesc("cau_relay_grade",
		"Grade of what bridge sends to peer_bridge over their relay links: 0 good … 3 lost.", relayLabels, nil)
	descRelayRTT = prometheus.NewDesc("cau_relay_rtt_seconds",
		"Round-trip time of the relay link (highest over meetings; validated RTCP samples, 5 s window).", relayLabels, nil)
	descRelayJitter = prometheus.NewDesc("cau_relay_jitter_seconds",
		"Jitter of what bridge sends to peer_bridge, from peer_bridge's receiver reports.", relayLabels, nil)
	descRelayLoss = prometheus.NewDesc("cau_relay_loss_ratio",
		"Loss of what bridge sends to peer_bridge on the relay link alone (TWCC feedback; receiver reports where the bridge has no hop figures), 5 s window, 0..1.", relayLabels, nil)
	descRelayBitrate = prometheus.NewDesc("cau_relay_bitrate_bits_per_second",
		"Bitrate bridge sends to peer_bridge (sum over meetings).", relayLabels, nil)
	descRelayStreams = prometheus.NewDesc("cau_relay_streams",
		"Streams bridge sends to peer_bridge (sum over meetings).", relayLabels, nil)

	descHopGrade = prometheus.NewDesc("cau_hop_grade",
		"Grade of one hop, from its own figures only: kind access = the site's endpoint links (worst endpoint), relay = the link between the site's bridge and the bridge above; direction up = towards the top. 0 good … 3 lost.", hopLabels, nil)
	descHopLoss = prometheus.NewDesc("cau_hop_loss_ratio",
		"Loss of the hop alone, 0..1, over a 5 s window, from its transport's TWCC feedback (packets lost upstream not counted).", hopLabels, nil)
	descHopUpstreamLoss = prometheus.NewDesc("cau_hop_upstream_loss_ratio",
		"Loss that reached the site's endpoints already missing from upstream (their reports' loss less their own link's), 0..1, 5 s window: counted against the upstream hop, not this site.", hopLabels, nil)
	descHopRTT = prometheus.NewDesc("cau_hop_rtt_seconds",
		"Round-trip time of the hop: mean of the RTCP samples validated against their sender reports, 5 s window.", hopLabels, nil)
	descHopJitter = prometheus.NewDesc("cau_hop_jitter_seconds",
		"RFC 3550 interarrival jitter on the hop (worst stream, latest receiver reports).", hopLabels, nil)
	descHopBitrate = prometheus.NewDesc("cau_hop_bitrate_bits_per_second",
		"Media bitrate crossing the hop (RTP header and payload), 5 s window.", hopLabels, nil)
	descSiteAffected = prometheus.NewDesc("cau_site_affected",
		"1 when the site's endpoints receive loss from a hop upstream of them (the console names it), else 0.", siteLabels, nil)
	descHopRTTDropped = prometheus.NewDesc("cau_hop_rtt_dropped_total",
		"RTT samples refused by the bridges: a receiver report answering no sender report they sent, or an impossible value.", []string{"kind"}, nil)

	descBridgeUp = prometheus.NewDesc("cau_bridge_up",
		"1 if the bridge is registered with signaling, 0 if it went down (kept for an hour).", bridgeLabels, nil)
	descBridgeEndpoints = prometheus.NewDesc("cau_bridge_endpoints",
		"Endpoints placed on the bridge.", bridgeLabels, nil)
	descBridgeStreams = prometheus.NewDesc("cau_bridge_endpoint_streams",
		"Streams between the bridge and its endpoints: in = published to it, out = forwarded to them.",
		[]string{"bridge", "site", "direction"}, nil)
	descBridgeRelays = prometheus.NewDesc("cau_bridge_relay_links",
		"Bridges this bridge has relay links with.", bridgeLabels, nil)

	descEndpointsByGrade = prometheus.NewDesc("cau_monitor_endpoints",
		"Endpoints by grade.", []string{"grade"}, nil)
	descAlertsOpen = prometheus.NewDesc("cau_monitor_alerts_open",
		"Open console alerts by kind (site, bridge).", []string{"kind"}, nil)
	descSampleSeconds = prometheus.NewDesc("cau_monitor_sample_duration_seconds",
		"How long the latest sample of every link took.", nil, nil)
)

// collector exports the monitor's latest snapshot; it reads no packet counter itself.
type collector struct{ m *Monitor }

// Collector returns a Prometheus collector for the monitor's figures.
func (m *Monitor) Collector() prometheus.Collector { return collector{m} }

// Describe implements prometheus.Collector.
func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSiteEndpoints, descSiteGrade, descSiteUplinkGrade, descSiteRTT,
		descSiteJitter, descSiteLoss, descSiteBitrate, descSiteMOS, descSitePackets, descSiteLost,
		descSiteEstimate, descSiteLayers, descRelayEstimate, descRelayLayers,
		descRelayGrade, descRelayRTT, descRelayJitter, descRelayLoss, descRelayBitrate, descRelayStreams,
		descHopGrade, descHopLoss, descHopUpstreamLoss, descHopRTT, descHopJitter, descHopBitrate,
		descSiteAffected, descHopRTTDropped,
		descBridgeUp, descBridgeEndpoints, descBridgeStreams, descBridgeRelays,
		descEndpointsByGrade, descAlertsOpen, descSampleSeconds} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.m.Snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	for id, v := range s.Sites {
		gauge(descSiteEndpoints, float64(v.Endpoints), id, v.Level)
		if v.Grade != GradeUnknown {
			gauge(descSiteGrade, float64(v.Grade), id, v.Level)
		}
		if v.UplinkGrade != GradeUnknown {
			gauge(descSiteUplinkGrade, float64(v.UplinkGrade), id, v.Level)
		}
		if v.Endpoints == 0 {
			continue // a bridge's site without endpoints of its own: only its uplink
		}
		affected := 0.0
		if v.AffectedBy != "" {
			affected = 1
		}
		gauge(descSiteAffected, affected, id, v.Level)
		if v.RTTMs > 0 {
			gauge(descSiteRTT, v.RTTMs/1e3, id, v.Level)
		}
		if v.MOS > 0 {
			gauge(descSiteMOS, v.MOS, id, v.Level)
		}
		if v.EstimateBps > 0 {
			gauge(descSiteEstimate, v.EstimateBps, id, v.Level)
		}
		if v.Layers.Total() > 0 {
			for i, n := range v.Layers.values() {
				gauge(descSiteLayers, float64(n), id, v.Level, layerNames[i])
			}
		}
		for _, d := range []struct {
			dir string
			f   Figures
		}{{"up", v.Up}, {"down", v.Down}} {
			if d.f.Streams == 0 {
				continue
			}
			gauge(descSiteJitter, d.f.JitterMs/1e3, id, v.Level, d.dir)
			gauge(descSiteLoss, d.f.LossPct/100, id, v.Level, d.dir)
			gauge(descSiteBitrate, d.f.BitrateBps, id, v.Level, d.dir)
		}
	}
	for id, k := range s.Counters {
		counter(descSitePackets, k.PacketsUp, id, k.Level, "up")
		counter(descSitePackets, k.PacketsDown, id, k.Level, "down")
		counter(descSiteLost, k.LostUp, id, k.Level, "up")
		counter(descSiteLost, k.LostDown, id, k.Level, "down")
	}
	for _, r := range s.Relays {
		l := []string{r.Bridge, r.Peer, r.Site, r.PeerSite, r.Direction}
		if r.Grade != GradeUnknown {
			gauge(descRelayGrade, float64(r.Grade), l...)
		}
		if r.RTTMs > 0 {
			gauge(descRelayRTT, r.RTTMs/1e3, l...)
		}
		gauge(descRelayJitter, r.JitterMs/1e3, l...)
		gauge(descRelayLoss, r.LossPct/100, l...)
		gauge(descRelayBitrate, r.BitrateBps, l...)
		gauge(descRelayStreams, float64(r.Streams), l...)
		if r.EstimateBps > 0 {
			gauge(descRelayEstimate, r.EstimateBps, l...)
		}
		if r.Layers.Total() > 0 {
			for i, n := range r.Layers.values() {
				gauge(descRelayLayers, float64(n), append(l, layerNames[i])...)
			}
		}
	}
	for _, h := range s.Hops {
		l := []string{h.Site, h.Level, h.Kind, h.Direction}
		if h.Grade != GradeUnknown {
			gauge(descHopGrade, float64(h.Grade), l...)
		}
		gauge(descHopLoss, h.LossPct/100, l...)
		if h.Kind == HopAccess && h.Direction == "down" {
			gauge(descHopUpstreamLoss, h.UpstreamLossPct/100, l...)
		}
		if h.RTTMs > 0 {
			gauge(descHopRTT, h.RTTMs/1e3, l...)
		}
		gauge(descHopJitter, h.JitterMs/1e3, l...)
		gauge(descHopBitrate, h.BitrateBps, l...)
	}
	for kind, n := range s.RTTDropped {
		counter(descHopRTTDropped, n, kind)
	}
	for _, b := range s.Bridges {
		up := 0.0
		if b.Up {
			up = 1
		}
		gauge(descBridgeUp, up, b.ID, b.Site)
		if !b.Up {
			continue
		}
		gauge(descBridgeEndpoints, float64(b.Endpoints), b.ID, b.Site)
		gauge(descBridgeStreams, float64(b.StreamsIn), b.ID, b.Site, "in")
		gauge(descBridgeStreams, float64(b.StreamsOut), b.ID, b.Site, "out")
		gauge(descBridgeRelays, float64(b.RelayLinks), b.ID, b.Site)
	}
	for _, g := range []Grade{GradeUnknown, GradeGood, GradeFair, GradePoor, GradeLost} {
		gauge(descEndpointsByGrade, float64(s.Endpoints[g]), g.String())
	}
	open := map[string]int{"site": 0, "bridge": 0}
	for _, a := range s.Alerts {
		if a.Open() {
			open[a.Kind]++
		}
	}
	for kind, n := range open {
		gauge(descAlertsOpen, float64(n), kind)
	}
	gauge(descSampleSeconds, s.SampleDuration.Seconds())
}
