package redis

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// SetLogger sends go-redis's own log lines (by default printed to stderr through the
// standard logger, one per failed dial: hundreds a second while Redis is down) to log as
// warnings, at most one line per kind of message per logEvery; the next line of a kind
// says how many were held back. go-redis's logger is process-wide, so this is called
// once, by the command that opens the clients.
func SetLogger(log *slog.Logger) {
	goredis.SetLogger(&budgetLogger{log: log, last: map[string]*logKind{}})
}

const (
	logEvery = 10 * time.Second
	logKinds = 64 // bound on the formats remembered; past it they share one entry
)

type budgetLogger struct {
	log  *slog.Logger
	mu   sync.Mutex // guards last
	last map[string]*logKind
}

type logKind struct {
	at   time.Time
	held int
}

// Printf implements go-redis's internal.Logging.
func (l *budgetLogger) Printf(ctx context.Context, format string, v ...any) {
	now := time.Now()
	l.mu.Lock()
	key := format
	if _, ok := l.last[key]; !ok && len(l.last) >= logKinds {
		key = "(other)"
	}
	k := l.last[key]
	if k == nil {
		k = &logKind{}
		l.last[key] = k
	}
	if !k.at.IsZero() && now.Sub(k.at) < logEvery {
		k.held++
		l.mu.Unlock()
		return
	}
	held := k.held
	k.at, k.held = now, 0
	l.mu.Unlock()
	l.log.WarnContext(ctx, "redis client", "msg", fmt.Sprintf(format, v...), "held_back", held)
}
