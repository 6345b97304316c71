package logbudget

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestHandlerSpendsAndRedacts: a slog logger through Handler logs Burst lines of one
// message, then one per Refill with the count held back; a redacted attribute is logged
// as its length, whether given with the line or with With.
func TestHandlerSpendsAndRedacts(t *testing.T) {
	var buf bytes.Buffer
	var refused int
	b := &Budget{Suppressed: func(string) { refused++ }}
	log := slog.New(Handler(slog.NewTextHandler(&buf, nil), b, "lib", "data"))
	start := time.Now()
	for range 100 {
		log.Error("failed to parse", "data", "secret-1")
	}
	log.With("data", "secret-2").Error("another kind")
	if got := strings.Count(buf.String(), "failed to parse"); got != Burst {
		t.Errorf("%d lines of one kind logged at once, want %d", got, Burst)
	}
	if refused != 100-Burst {
		t.Errorf("%d lines counted as refused, want %d", refused, 100-Burst)
	}
	if strings.Contains(buf.String(), "secret") || !strings.Contains(buf.String(), "data_bytes=8") {
		t.Errorf("the redacted attribute is not replaced by its length:\n%s", buf.String())
	}
	buf.Reset()
	if ok, held := b.Allow("lib", "failed to parse", start.Add(Refill+time.Second)); !ok || held != 100-Burst {
		t.Errorf("after Refill: allowed %v with %d held back, want true with %d", ok, held, 100-Burst)
	}
}
