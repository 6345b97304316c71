// Package logbudget bounds what third-party libraries log about traffic anyone can send
// (issue 12, finding 9): pion's warnings for strangers' packets at the media ports,
// sipgo's errors for unparsable SIP datagrams. Each line spends from a budget per kind (a
// scope and the line's format or message): a few lines, then one every Refill; what the
// budget refuses is counted, and the next line of its kind that goes out says how many
// were held back. The budget is checked before a line is formatted.
package logbudget

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

const (
	// Burst is the lines of one kind logged at once.
	Burst = 5
	// Refill is the wait for each line after the burst.
	Refill = 10 * time.Second
	// maxKinds bounds the kinds tracked: libraries' formats are constants, but a
	// message built at run time makes a new kind each time; past the bound they share
	// one per scope.
	maxKinds = 256
)

// Budget is shared by the loggers of one component. The zero Budget is ready to use.
type Budget struct {
	// Suppressed, if set, is told of each line refused, by scope (before the first use).
	Suppressed func(scope string)

	mu    sync.Mutex // guards kinds
	kinds map[kind]*bucket
}

type kind struct{ scope, format string }

type bucket struct {
	tokens     float64
	at         time.Time
	suppressed int // refused since the last line that went out
}

// Allow spends one line of kind (scope, format) at now. It returns whether to log it,
// and how many of its kind were suppressed since the last one logged.
func (b *Budget) Allow(scope, format string, now time.Time) (bool, int) {
	k := kind{scope, format}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kinds == nil {
		b.kinds = map[kind]*bucket{}
	}
	bk := b.kinds[k]
	if bk == nil {
		if len(b.kinds) >= maxKinds {
			k = kind{scope: scope, format: "(other)"}
			bk = b.kinds[k]
		}
		if bk == nil {
			bk = &bucket{tokens: Burst, at: now}
			b.kinds[k] = bk
		}
	}
	bk.tokens = min(Burst, bk.tokens+float64(now.Sub(bk.at))/float64(Refill))
	bk.at = now
	if bk.tokens < 1 {
		bk.suppressed++
		if b.Suppressed != nil {
			b.Suppressed(scope)
		}
		return false, 0
	}
	bk.tokens--
	n := bk.suppressed
	bk.suppressed = 0
	return true, n
}

// Handler returns a slog handler over next whose records spend from b under scope and
// their message. Attributes named in redact (a library's raw input, which may carry
// credentials) are replaced by their length in bytes, as <name>_bytes.
func Handler(next slog.Handler, b *Budget, scope string, redact ...string) slog.Handler {
	return &handler{next: next, b: b, scope: scope, redact: redact}
}

type handler struct {
	next   slog.Handler
	b      *Budget
	scope  string
	redact []string
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	ok, held := h.b.Allow(h.scope, r.Message, r.Time)
	if !ok {
		return nil
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.clean(a))
		return true
	})
	if held > 0 {
		out.AddAttrs(slog.Int("suppressed_before", held))
	}
	return h.next.Handle(ctx, out)
}

// clean replaces an attribute to redact by its length.
func (h *handler) clean(a slog.Attr) slog.Attr {
	for _, name := range h.redact {
		if a.Key == name {
			return slog.Int(name+"_bytes", len(a.Value.String()))
		}
	}
	return a
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(as))
	for i, a := range as {
		clean[i] = h.clean(a)
	}
	return &handler{next: h.next.WithAttrs(clean), b: h.b, scope: h.scope, redact: h.redact}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{next: h.next.WithGroup(name), b: h.b, scope: h.scope, redact: h.redact}
}
