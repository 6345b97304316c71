package signaling

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cau-project/cau/protocol"
)

// Metrics are signaling's Prometheus series. Label values are bounded: message kinds are
// the protocol's own (anything else counts as "unknown") and error codes are constants.
type Metrics struct {
	Sessions     prometheus.Gauge
	Meetings     prometheus.Gauge
	Participants prometheus.Gauge
	Messages     *prometheus.CounterVec // by type
	Errors       *prometheus.CounterVec // by code
	Joins        prometheus.Counter
	// Limited counts what a configured cap refused, by limit (a constant of limits:
	// token_sessions, token_joins, bridge_peers, meeting_participants, addr_sockets).
	Limited *prometheus.CounterVec
	// Owned counts the meetings whose lease this node holds; LeaseChanges counts this
	// node's lease events by what happened (acquired, lost, released, idle); Forwarded
	// counts the sessions forwarded to another node, the meeting's owner (issue 16).
	Owned        prometheus.Gauge
	LeaseChanges *prometheus.CounterVec
	Forwarded    prometheus.Counter
	// Resumes counts the joins that came with a resume token, by outcome: adopted (the
	// peer was taken over as it was) or renegotiated (it was gone: new connections).
	Resumes *prometheus.CounterVec
	// JoinPhases times each phase of a successful join (jointime.go).
	JoinPhases *prometheus.HistogramVec
	// SubscriberOffers counts the bridges' subscriber offers relayed to endpoints: beside
	// Joins, the renegotiations a join storm costs (one per join each endpoint receives
	// tracks from, unbatched), a figure that holds on a loaded machine.
	SubscriberOffers prometheus.Counter
}

// NewMetrics creates signaling's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Sessions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cau_signaling_sessions",
			Help: "Open signaling WebSockets."}),
		Meetings: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cau_meetings_live",
			Help: "Meetings with at least one participant connected."}),
		Participants: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cau_participants",
			Help: "Participants joined to live meetings."}),
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cau_signaling_messages_total",
			Help: "Signaling messages received, by type."}, []string{"type"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cau_signaling_errors_total",
			Help: "Signaling error replies, by code."}, []string{"code"}),
		Joins: prometheus.NewCounter(prometheus.CounterOpts{Name: "cau_signaling_joins_total",
			Help: "Successful joins."}),
		Limited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cau_signaling_limited_total",
			Help: "Joins, sockets and placements a configured cap refused, by limit."}, []string{"limit"}),
		Owned: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cau_meeting_owned",
			Help: "Live meetings whose lease this signaling node holds (it runs them)."}),
		LeaseChanges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cau_meeting_lease_changes_total",
			Help: "Meeting lease events on this node: acquired, lost, released, idle."}, []string{"event"}),
		Forwarded: prometheus.NewCounter(prometheus.CounterOpts{Name: "cau_signaling_forwarded_sessions_total",
			Help: "Sessions this node forwarded to the node owning their meeting."}),
		Resumes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cau_signaling_resumes_total",
			Help: "Joins with a resume token, by outcome: adopted (media kept) or renegotiated."}, []string{"outcome"}),
		JoinPhases: newJoinPhaseHistogram(),
		SubscriberOffers: prometheus.NewCounter(prometheus.CounterOpts{Name: "cau_signaling_subscriber_offers_total",
			Help: "Subscriber (re)negotiation offers sent to endpoints for their bridge peers."}),
	}
	for _, c := range []prometheus.Collector{m.Sessions, m.Meetings, m.Participants, m.Messages, m.Errors, m.Joins,
		m.Limited, m.Owned, m.LeaseChanges, m.Forwarded, m.Resumes, m.JoinPhases, m.SubscriberOffers} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

var knownKinds = map[protocol.Kind]bool{
	protocol.KindJoin: true, protocol.KindOffer: true, protocol.KindAnswer: true,
	protocol.KindCandidate: true, protocol.KindMute: true, protocol.KindLeave: true, protocol.KindPing: true,
	protocol.KindFloorAction: true, protocol.KindPin: true, protocol.KindView: true,
}

func (m *Metrics) message(k protocol.Kind) {
	if m == nil {
		return
	}
	label := string(k)
	if !knownKinds[k] {
		label = "unknown"
	}
	m.Messages.WithLabelValues(label).Inc()
}

func (m *Metrics) subscriberOffer() {
	if m != nil && m.SubscriberOffers != nil {
		m.SubscriberOffers.Inc()
	}
}

func (m *Metrics) errorReply(code string) {
	if m != nil {
		m.Errors.WithLabelValues(code).Inc()
	}
}

func (m *Metrics) limited(limit string) {
	if m != nil && m.Limited != nil {
		m.Limited.WithLabelValues(limit).Inc()
	}
}

func (m *Metrics) resumed(adopted bool) {
	if m == nil || m.Resumes == nil {
		return
	}
	outcome := "renegotiated"
	if adopted {
		outcome = "adopted"
	}
	m.Resumes.WithLabelValues(outcome).Inc()
}
