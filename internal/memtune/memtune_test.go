package memtune

import (
	"runtime/debug"
	"testing"
)

// restore puts the runtime's settings back after a test changed them.
func restore(t *testing.T) {
	gc, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	debug.SetGCPercent(gc)
	t.Cleanup(func() { debug.SetGCPercent(gc); debug.SetMemoryLimit(limit) })
}

func noEnv(string) string { return "" }

func TestApplyDefaultsAndConfig(t *testing.T) {
	restore(t)
	s := Apply(0, 0, noEnv)
	if s.GCPercent != DefaultGCPercent || s.Limit != NoLimit || s.GCPercentFromEnv || s.LimitFromEnv {
		t.Errorf("defaults: %+v", s)
	}
	if got := debug.SetGCPercent(DefaultGCPercent); got != DefaultGCPercent {
		t.Errorf("runtime GOGC %d, want %d", got, DefaultGCPercent)
	}
	s = Apply(-1, 1<<30, noEnv)
	if s.GCPercent != -1 || s.Limit != 1<<30 {
		t.Errorf("configured: %+v", s)
	}
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Errorf("runtime memory limit %d, want %d", got, 1<<30)
	}
	if got := debug.SetGCPercent(-1); got != -1 {
		t.Errorf("runtime GOGC %d, want -1 (off)", got)
	}
}

// The runtime applied GOGC and GOMEMLIMIT itself at start: Apply must leave them.
func TestEnvironmentWins(t *testing.T) {
	restore(t)
	debug.SetGCPercent(77)
	debug.SetMemoryLimit(3 << 30)
	env := func(k string) string { return map[string]string{"GOGC": "77", "GOMEMLIMIT": "3GiB"}[k] }
	s := Apply(20, 1<<30, env)
	if !s.GCPercentFromEnv || !s.LimitFromEnv || s.GCPercent != 77 || s.Limit != 3<<30 {
		t.Errorf("settings %+v: want the environment's 77 and 3GiB", s)
	}
	if got := debug.SetGCPercent(100); got != 77 {
		t.Errorf("runtime GOGC %d, want 77 left in force", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 3<<30 {
		t.Errorf("runtime memory limit %d, want 3GiB left in force", got)
	}
}
