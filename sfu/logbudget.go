package sfu

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The media ports take packets from anyone: garbage UDP, STUN with bad or no credentials,
// DTLS records from strangers. pion logs a warning for many of them, one line per packet,
// so a flood at the ICE port used to grow the log as fast as the flooder could send
// (issue 12, finding 9). Every line pion logs now spends from a budget per message (its
// scope and format): a few lines, then one every logRefill; what the budget refuses is
// counted (cau_bridge_log_lines_suppressed_total) and the next line that goes out says how
// many of its kind were held back. The budget is checked before a line is formatted, so
// a refused line costs no formatting either.
const (
	logBurst  = 5                // lines of one kind logged at once
	logRefill = 10 * time.Second // then one more per this
	// logKinds bounds the kinds tracked: pion's formats are constants, but a message
	// built at run time makes a new kind each time; past the bound they share one.
	logKinds = 256
)

// logBudget is shared by every pion logger of a bridge.
type logBudget struct {
	mu    sync.Mutex // guards kinds
	kinds map[logKind]*logBucket
	// suppressed counts refused lines by scope; nil: not counted.
	suppressed *prometheus.CounterVec
}

type logKind struct{ scope, format string }

type logBucket struct {
	tokens     float64
	at         time.Time
	suppressed int // refused since the last line that went out
}

// allow spends one line of kind at now. It returns whether to log it, and how many of
// its kind were suppressed since the last one logged.
func (b *logBudget) allow(scope, format string, now time.Time) (bool, int) {
	k := logKind{scope, format}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kinds == nil {
		b.kinds = map[logKind]*logBucket{}
	}
	bk := b.kinds[k]
	if bk == nil {
		if len(b.kinds) >= logKinds {
			k = logKind{scope: scope, format: "(other)"}
			bk = b.kinds[k]
		}
		if bk == nil {
			bk = &logBucket{tokens: logBurst, at: now}
			b.kinds[k] = bk
		}
	}
	bk.tokens = min(logBurst, bk.tokens+float64(now.Sub(bk.at))/float64(logRefill))
	bk.at = now
	if bk.tokens < 1 {
		bk.suppressed++
		if b.suppressed != nil {
			b.suppressed.WithLabelValues(scopeLabel(scope)).Inc()
		}
		return false, 0
	}
	bk.tokens--
	n := bk.suppressed
	bk.suppressed = 0
	return true, n
}

// pionScopes are the label values of cau_bridge_log_lines_suppressed_total; any other
// scope counts as "other", so the label stays bounded whatever pion names.
var pionScopes = map[string]bool{
	"ice": true, "udpmux": true, "tcpmux": true, "dtls": true, "pc": true, "srtp": true,
	"sctp": true, "datachannel": true, "ortc": true, "mux": true,
}

func scopeLabel(scope string) string {
	if pionScopes[scope] {
		return scope
	}
	return "other"
}
