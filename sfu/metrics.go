package sfu

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the bridge's Prometheus counters. Labels are bounded: kind is audio or video.
type Metrics struct {
	PacketsIn      *prometheus.CounterVec // by kind
	BytesIn        *prometheus.CounterVec
	PacketsOut     *prometheus.CounterVec
	BytesOut       *prometheus.CounterVec
	PacketsDropped *prometheus.CounterVec // by reason: keyframe_wait, write_error, overload, malformed
	KeyframeReqs   prometheus.Counter     // PLIs sent to publishers
	// Retransmissions counts NACKed packets by result: sent (again, from the track's
	// cache) or missed (no longer cached). Nil in a Metrics built by hand: not counted.
	Retransmissions *prometheus.CounterVec
	Peers           prometheus.Gauge
	UpTracks        prometheus.Gauge
	DownTracks      prometheus.Gauge
	// LogSuppressed counts pion log lines the log budget held back, by scope (ice,
	// udpmux, dtls, … or other): traffic from strangers at the media ports.
	LogSuppressed *prometheus.CounterVec
	// TCPConnsRefused counts ICE-TCP connections closed at once for being over the caps
	// (tcplimit.go).
	TCPConnsRefused prometheus.Counter
	// Simulcast (allocator.go); nil in a Metrics built by hand: not counted. link is
	// endpoint or relay, direction up or down, layer 0..2.
	LayerChanges   *prometheus.CounterVec   // by link, direction: the allocator moved a subscription
	LayerForwarded *prometheus.GaugeVec     // by link, layer: simulcast subscriptions forwarded at each layer now
	LinkEstimate   *prometheus.HistogramVec // by link: each link's estimate, observed every allocator tick
	// LayerPauses counts, by link, the simulcast subscriptions stopped because nobody
	// beyond needs them (need.go: a relay link's far end, or a hidden tile).
	LayerPauses *prometheus.CounterVec
	// LinkProbes counts, by link and result (ok, failed), the bandwidth probes (padding)
	// sent before a step up (probe.go).
	LinkProbes *prometheus.CounterVec
	// DynacastLayers counts the publishers' simulcast layers paused because nobody
	// needs them and resumed (dynacast.go), by change (pause, resume).
	DynacastLayers *prometheus.CounterVec
	// SRTPConnections counts subscriber connections by who encrypts their RTP (by:
	// bridge, own SRTP; pion, where the keys or the pair did not allow it). Nil in a
	// Metrics built by hand: not counted.
	SRTPConnections *prometheus.CounterVec
}

// NewMetrics creates the bridge's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		PacketsIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cau_bridge_rtp_packets_received_total",
			Help: "RTP packets received from publishers."}, []string{"kind"}),
		BytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cau_bridge_rtp_bytes_received_total",
			Help: "RTP payload bytes received from publishers."}, []string{"kind"}),
		PacketsOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cau_bridge_rtp_packets_forwarded_total",
			Help: "RTP packets forwarded to subscribers."}, []string{"kind"}),
		BytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cau_bridge_rtp_bytes_forwarded_total",
			Help: "RTP payload bytes forwarded to subscribers."}, []string{"kind"}),
		PacketsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cau_bridge_rtp_packets_dropped_total",
			Help: "RTP packets not forwarded, by reason."}, []string{"reason"}),
		KeyframeReqs: prometheus.NewCounter(prometheus.CounterOpts{Name: "cau_bridge_keyframe_requests_total",
			Help: "Keyframe requests (PLI) sent to publishers."}),
		Retransmissions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cau_bridge_rtp_retransmissions_total",
			Help: "Packets subscribers reported lost (NACK), by result: sent again, or missed (no longer cached)."},
			[]string{"result"}),
		Peers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cau_bridge_peers",
			Help: "Endpoints connected to this bridge."}),
		UpTracks: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cau_bridge_streams_in",
			Help: "Tracks published to this bridge."}),
		DownTracks: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cau_bridge_streams_out",
			Help: "Tracks forwarded by this bridge."}),
		LogSuppressed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cau_bridge_log_lines_suppressed_total",
			Help: "Log lines of the media stack held back by the log budget (a flood at the media ports), by scope."},
			[]string{"scope"}),
		TCPConnsRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: "cau_bridge_tcp_conns_refused_total",
			Help: "ICE-TCP connections closed on accept: too many open from the address, or in all."}),
		LayerChanges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cau_bridge_layer_changes_total",
			Help: "Simulcast layer changes the bandwidth allocator made, by link kind and direction."},
			[]string{"link", "direction"}),
		LayerForwarded: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cau_bridge_layer_subscriptions",
			Help: "Simulcast subscriptions by the layer forwarded now (0 = lowest) and link kind."},
			[]string{"link", "layer"}),
		LinkEstimate: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "cau_bridge_link_estimate_bits_per_second",
			Help:    "Bandwidth estimates of the links the bridge sends simulcast on, observed every 0.5 s per link.",
			Buckets: []float64{150e3, 300e3, 500e3, 750e3, 1e6, 1.5e6, 2e6, 3e6, 5e6}}, []string{"link"}),
		LayerPauses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cau_bridge_layer_pauses_total",
			Help: "Simulcast subscriptions stopped because nobody beyond the link needs the source, by link kind."},
			[]string{"link"}),
		LinkProbes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cau_bridge_link_probes_total",
			Help: "Bandwidth probes (padding) sent before a simulcast step up, by link kind and result (ok, failed)."},
			[]string{"link", "result"}),
		DynacastLayers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cau_bridge_dynacast_layer_changes_total",
			Help: "Publishers' simulcast layers paused because nobody needs them, and resumed, by change (pause, resume)."},
			[]string{"change"}),
		SRTPConnections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cau_bridge_srtp_connections_total",
			Help: "Subscriber connections by who encrypts their RTP: the bridge (own SRTP) or pion."},
			[]string{"by"}),
	}
	for _, c := range []prometheus.Collector{m.PacketsIn, m.BytesIn, m.PacketsOut, m.BytesOut,
		m.PacketsDropped, m.KeyframeReqs, m.Retransmissions, m.Peers, m.UpTracks, m.DownTracks, m.LogSuppressed,
		m.TCPConnsRefused, m.LayerChanges, m.LayerForwarded, m.LinkEstimate, m.LayerPauses, m.LinkProbes, m.DynacastLayers,
		m.SRTPConnections} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
