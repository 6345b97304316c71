package sipgw

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the gateway's Prometheus series. Every label value is one of the constants
// below, so the series stay bounded whatever callers send.
type Metrics struct {
	// Active is the calls in progress (answered, not yet ended).
	Active prometheus.Gauge
	// Calls counts calls by how they ended their setup: answered, rejected (a SIP error
	// before answering), cancelled (CANCEL before the answer) or failed (our fault).
	Calls *prometheus.CounterVec
	// Dials counts the calls the gateway placed (auto-dial) by outcome: answered,
	// rejected (the room refused, or its answer was unusable) or failed (no answer, no
	// meeting).
	Dials *prometheus.CounterVec
	// Codecs counts answered calls by kind (audio, video) and codec (g722, pcmu, pcma,
	// h264, none).
	Codecs *prometheus.CounterVec
	// Encryption counts answered calls by their media's protection: srtp or none.
	Encryption *prometheus.CounterVec
	// Requests counts SIP requests received by method (INVITE, ACK, BYE, CANCEL,
	// OPTIONS, INFO; anything else is "other").
	Requests *prometheus.CounterVec
	// Packets counts RTP packets by direction (to_room, from_room) and kind.
	Packets *prometheus.CounterVec
	// KeyframeRequests counts keyframe requests by direction (to_room: PLI, FIR or SIP
	// INFO sent to the room; from_room: asked of the meeting) .
	KeyframeRequests *prometheus.CounterVec
	// SessionRefreshes counts the session refreshes the gateway made (RFC 4028), and
	// SessionExpired the calls it ended because their session was not refreshed in time
	// (or its refresh failed).
	SessionRefreshes, SessionExpired prometheus.Counter
	// RoomJitter and RoomLoss are what rooms report of the media the gateway sends them
	// (RTCP reception reports), by kind: interarrival jitter in seconds, and the fraction
	// of packets lost between two reports.
	RoomJitter, RoomLoss *prometheus.HistogramVec
	// VideoRefused counts answered calls whose offered video was refused (the call
	// audio-only), by reason (description.VideoRefused: codec, h264_mode0, srtp,
	// transport).
	VideoRefused *prometheus.CounterVec
	// VideoSwitch is how long a change of the room's video (floor, dominant speaker) took,
	// from the decision to the new source's first keyframe sent to the room.
	VideoSwitch prometheus.Histogram
	// RTT is the round trip to rooms, by kind: from their reception reports' LSR and DLSR
	// against the gateway's sender reports (RFC 3550 §6.4.1).
	RTT *prometheus.HistogramVec
	// ReceivedJitter and ReceivedLoss are the gateway's own figures of the media rooms
	// send it, by kind, each report interval: interarrival jitter in seconds and the
	// fraction of packets lost.
	ReceivedJitter, ReceivedLoss *prometheus.HistogramVec
	// States is the calls in progress by state: active, or held (the room put both its
	// streams on hold).
	States *prometheus.GaugeVec
	// MixUnderruns counts the 20 ms frames of a room's mix that went out late (more than
	// a frame behind their time: the room's jitter buffer ran short) or not at all (the
	// mix loop skipped them to catch up), by reason: late, missing.
	MixUnderruns *prometheus.CounterVec
	// MixFrames counts the mix frames sent to rooms, the base of MixUnderruns.
	MixFrames prometheus.Counter
	// MixLateness is how long after its time each frame of a room's mix went out.
	MixLateness prometheus.Histogram
}

// Call states, the States label (and protocol.SIPCall.State, with stateConnecting and
// stateEnded).
const (
	stateConnecting = "connecting"
	stateActive     = "active"
	stateHeld       = "held"
	stateEnded      = "ended"
)

// Call outcomes, the Calls label.
const (
	outcomeAnswered  = "answered"
	outcomeRejected  = "rejected"
	outcomeCancelled = "cancelled"
	outcomeFailed    = "failed"
)

// NewMetrics creates the gateway's metrics and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		Active: f.NewGauge(prometheus.GaugeOpts{Name: "cau_sip_calls_active", Help: "SIP calls in progress."}),
		Calls: f.NewCounterVec(prometheus.CounterOpts{Name: "cau_sip_calls_total",
			Help: "SIP calls by the outcome of their setup."}, []string{"outcome"}),
		Dials: f.NewCounterVec(prometheus.CounterOpts{Name: "cau_sip_dials_total",
			Help: "SIP calls the gateway placed to rooms (auto-dial), by outcome."}, []string{"outcome"}),
		Codecs: f.NewCounterVec(prometheus.CounterOpts{Name: "cau_sip_call_codecs_total",
			Help: "Answered SIP calls by media kind and negotiated codec."}, []string{"kind", "codec"}),
		Encryption: f.NewCounterVec(prometheus.CounterOpts{Name: "cau_sip_call_encryption_total",
			Help: "Answered SIP calls by media encryption (srtp, none)."}, []string{"encryption"}),
		Requests: f.NewCounterVec(prometheus.CounterOpts{Name: "cau_sip_requests_total",
			Help: "SIP requests received, by method."}, []string{"method"}),
		Packets: f.NewCounterVec(prometheus.CounterOpts{Name: "cau_sip_rtp_packets_total",
			Help: "RTP packets exchanged with rooms, by direction and kind."}, []string{"direction", "kind"}),
		KeyframeRequests: f.NewCounterVec(prometheus.CounterOpts{Name: "cau_sip_keyframe_requests_total",
			Help: "Keyframe requests relayed, by direction."}, []string{"direction"}),
		SessionRefreshes: f.NewCounter(prometheus.CounterOpts{Name: "cau_sip_session_refreshes_total",
			Help: "SIP session refreshes (RFC 4028) the gateway sent and had answered."}),
		SessionExpired: f.NewCounter(prometheus.CounterOpts{Name: "cau_sip_session_expired_total",
			Help: "SIP calls ended because their session timer ran out or their refresh failed."}),
		RoomJitter: f.NewHistogramVec(prometheus.HistogramOpts{Name: "cau_sip_room_jitter_seconds",
			Help:    "Interarrival jitter rooms report (RTCP) of the media the gateway sends them, by kind.",
			Buckets: []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2}}, []string{"kind"}),
		RoomLoss: f.NewHistogramVec(prometheus.HistogramOpts{Name: "cau_sip_room_loss_ratio",
			Help:    "Fraction of packets lost that rooms report (RTCP) of the media the gateway sends them, by kind.",
			Buckets: []float64{0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5}}, []string{"kind"}),
		VideoRefused: f.NewCounterVec(prometheus.CounterOpts{Name: "cau_sip_video_refused_total",
			Help: "Answered SIP calls whose video was refused (audio-only), by reason."}, []string{"reason"}),
		VideoSwitch: f.NewHistogram(prometheus.HistogramOpts{Name: "cau_sip_video_switch_seconds",
			Help:    "Time from a change of the video a room is sent to the new source's first keyframe.",
			Buckets: []float64{0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5}}),
	}
	m.RTT = f.NewHistogramVec(prometheus.HistogramOpts{Name: "cau_sip_rtt_seconds",
		Help:    "Round trip to rooms from their RTCP reports against the gateway's sender reports, by kind.",
		Buckets: []float64{0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1}}, []string{"kind"})
	m.ReceivedJitter = f.NewHistogramVec(prometheus.HistogramOpts{Name: "cau_sip_received_jitter_seconds",
		Help:    "Interarrival jitter of the media rooms send the gateway, measured on arrival, by kind.",
		Buckets: []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2}}, []string{"kind"})
	m.ReceivedLoss = f.NewHistogramVec(prometheus.HistogramOpts{Name: "cau_sip_received_loss_ratio",
		Help:    "Fraction of the packets rooms send the gateway lost on the way, per report interval, by kind.",
		Buckets: []float64{0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5}}, []string{"kind"})
	m.States = f.NewGaugeVec(prometheus.GaugeOpts{Name: "cau_sip_calls_by_state",
		Help: "SIP calls in progress by state (active, held)."}, []string{"state"})
	m.MixUnderruns = f.NewCounterVec(prometheus.CounterOpts{Name: "cau_sip_mix_underruns_total",
		Help: "Frames of rooms' audio mix sent more than a frame late, or skipped, by reason (late, missing)."},
		[]string{"reason"})
	m.MixFrames = f.NewCounter(prometheus.CounterOpts{Name: "cau_sip_mix_frames_total",
		Help: "20 ms frames of audio mix sent to rooms."})
	m.MixLateness = f.NewHistogram(prometheus.HistogramOpts{Name: "cau_sip_mix_lateness_seconds",
		Help:    "How long after its time each 20 ms frame of a room's audio mix was sent.",
		Buckets: []float64{0.002, 0.005, 0.01, 0.02, 0.04, 0.06, 0.1, 0.2}})
	for _, s := range []string{stateActive, stateHeld} {
		m.States.WithLabelValues(s)
	}
	for _, r := range []string{"late", "missing"} {
		m.MixUnderruns.WithLabelValues(r)
	}
	for _, o := range []string{outcomeAnswered, outcomeRejected, outcomeCancelled, outcomeFailed} {
		m.Calls.WithLabelValues(o)
		m.Dials.WithLabelValues(o)
	}
	return m
}

var knownMethods = map[string]bool{"INVITE": true, "ACK": true, "BYE": true, "CANCEL": true, "OPTIONS": true, "INFO": true,
	"UPDATE": true}

func (m *Metrics) request(method string) {
	if !knownMethods[method] {
		method = "other"
	}
	m.Requests.WithLabelValues(method).Inc()
}
