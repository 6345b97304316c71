package testutil

import (
	"log/slog"
	"os"
)

// Logger is the tests' logger: errors only, on stderr, so a failure shows what went wrong
// without the noise of a passing run; everything (debug) with CAU_TEST_DEBUG set.
func Logger() *slog.Logger {
	level := slog.LevelError
	if os.Getenv("CAU_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
