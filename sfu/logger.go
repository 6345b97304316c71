package sfu

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/logging"

	"github.com/cau-project/cau/internal/logbudget"
)

// pionLoggerFactory routes pion's logs into slog with a "scope" field, so ICE and DTLS
// messages land in the same pipeline as ours (STYLE habit 10). Its loggers share one
// budget (internal/logbudget): traffic from strangers cannot grow the log without bound.
type pionLoggerFactory struct {
	log    *slog.Logger
	budget *logbudget.Budget
	// loggers keeps one logger per scope (scope → logging.LeveledLogger): pion asks for
	// a dozen on every connection, each a new slog handler with the scope attribute
	// preformatted, 3.7 kB per endpoint (issue 11); a logger holds no state of its own.
	// Scopes are pion's component names, a bounded set.
	loggers *sync.Map
}

func newPionLoggerFactory(log *slog.Logger, m *Metrics) logging.LoggerFactory {
	b := &logbudget.Budget{}
	if m != nil {
		b.Suppressed = func(scope string) { m.LogSuppressed.WithLabelValues(scopeLabel(scope)).Inc() }
	}
	return pionLoggerFactory{log: log, budget: b, loggers: &sync.Map{}}
}

func (f pionLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	if l, ok := f.loggers.Load(scope); ok {
		return l.(logging.LeveledLogger)
	}
	l, _ := f.loggers.LoadOrStore(scope, logging.LeveledLogger(pionLogger{log: f.log.With("scope", scope), scope: scope, budget: f.budget}))
	return l.(logging.LeveledLogger)
}

// pionLogger maps pion's levels onto slog's. pion's Info is chatty (every candidate), so it
// goes to Debug; Trace is dropped.
type pionLogger struct {
	log    *slog.Logger
	scope  string
	budget *logbudget.Budget
}

func (l pionLogger) logf(level slog.Level, format string, args ...any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	ok, held := l.budget.Allow(l.scope, format, time.Now())
	if !ok {
		return
	}
	if held > 0 {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, args...), "suppressed_before", held)
		return
	}
	l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
}

func (l pionLogger) Trace(string)          {}
func (l pionLogger) Tracef(string, ...any) {}
func (l pionLogger) Debug(msg string)      { l.logf(slog.LevelDebug, "%s", msg) }
func (l pionLogger) Debugf(format string, a ...any) {
	if format == pionRacyTrackFormat {
		return
	}
	l.logf(slog.LevelDebug, format, a...)
}

// pionRacyTrackFormat is a debug message of pion 4.2 that reads shared state without its
// lock: onTrack formats the whole TrackRemote while the goroutine that binds a simulcast
// layer's RTX stream (Chromium's repaired-rid) writes the track's RTX SSRC. Formatting it
// is a data race (the race detector fails the run; a torn read otherwise), so it is
// dropped; sfu logs the published track itself ("track published").
const pionRacyTrackFormat = "got new track: %+v"

func (l pionLogger) Info(msg string)                { l.logf(slog.LevelDebug, "%s", msg) }
func (l pionLogger) Infof(format string, a ...any)  { l.logf(slog.LevelDebug, format, a...) }
func (l pionLogger) Warn(msg string)                { l.logf(slog.LevelWarn, "%s", msg) }
func (l pionLogger) Warnf(format string, a ...any)  { l.logf(slog.LevelWarn, format, a...) }
func (l pionLogger) Error(msg string)               { l.logf(slog.LevelError, "%s", msg) }
func (l pionLogger) Errorf(format string, a ...any) { l.logf(slog.LevelError, format, a...) }
