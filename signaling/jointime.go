package signaling

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A join's time on the server, by phase, so that a slow join under a storm can be told
// apart: the server's own work and waits (these phases) from the client's side and the
// network (the load tester's token → joined minus the server's total). Logged with the
// "joined" line and observed in cau_signaling_join_phase_seconds.
//
//   - socket: from the socket's accept to the join message being handled (the client's
//     send, and the reader's wait for the message);
//   - verify: the token checked, counted against its caps, routed (forwarded or here);
//   - meeting: the scheduled meeting read from the store, the live meeting found or made;
//   - place: a bridge chosen and the endpoint's peer created there, or a resumed one
//     adopted (a control round trip
//     for a remote bridge);
//   - lock: waiting for the meeting's lock (other joins, leaves, reconciles);
//   - add: under it, the others told, the joined reply queued, subscriptions reconciled;
//   - total: the join message handled to the joined reply queued.
type joinTimes struct {
	start, verified, opened, placed, added time.Time
	socket, lockWait                       time.Duration
}

// joinPhases are the phase label values, in order.
var joinPhases = []string{"socket", "verify", "meeting", "place", "lock", "add", "total"}

// durations returns the phases' durations in joinPhases' order.
func (j *joinTimes) durations() []time.Duration {
	return []time.Duration{j.socket, j.verified.Sub(j.start), j.opened.Sub(j.verified), j.placed.Sub(j.opened),
		j.lockWait, j.added.Sub(j.placed) - j.lockWait, j.added.Sub(j.start)}
}

// logAttrs are the phases as log attributes, in milliseconds.
func (j *joinTimes) logAttrs() []any {
	var out []any
	for i, d := range j.durations() {
		out = append(out, slog.Float64(joinPhases[i]+"_ms", float64(d.Microseconds())/1000))
	}
	return out
}

// newJoinPhaseHistogram is cau_signaling_join_phase_seconds: 1 ms to ~16 s.
func newJoinPhaseHistogram() *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "cau_signaling_join_phase_seconds",
		Help:    "Time of each phase of a successful join on the server (socket, verify, meeting, place, lock, add, total).",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}, []string{"phase"})
}

func (m *Metrics) joinPhases(j *joinTimes) {
	if m == nil || m.JoinPhases == nil {
		return
	}
	for i, d := range j.durations() {
		m.JoinPhases.WithLabelValues(joinPhases[i]).Observe(d.Seconds())
	}
}
