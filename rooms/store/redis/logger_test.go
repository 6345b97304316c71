package redis

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestBudgetLoggerHoldsBackRepeats: a flood of one message (a dial failing while Redis is
// down) gives one line, and other messages still get theirs.
func TestBudgetLoggerHoldsBackRepeats(t *testing.T) {
	var out bytes.Buffer
	l := &budgetLogger{log: slog.New(slog.NewTextHandler(&out, nil)), last: map[string]*logKind{}}
	for i := range 1000 {
		l.Printf(context.Background(), "connection pool: failed to dial after %d attempts: %v", 5, i)
	}
	l.Printf(context.Background(), "push: error %v", "x")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines logged for 1000 repeats and one other message, want 2:\n%s", len(lines), out.String())
	}
	if !strings.Contains(lines[0], "failed to dial") || !strings.Contains(lines[1], "push: error x") {
		t.Errorf("lines: %q", lines)
	}
}
