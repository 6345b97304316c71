package testutil

import (
	"log/slog"
	"os"
)

// Logger is the tests' logger: errors only, on stderr, so a failure shows what went wrong
// without the noise of a passing run; the warnings too with CAU_TEST_DEBUG=warn;
// everything (debug) with CAU_TEST_DEBUG set to anything else.
func Logger() *slog.Logger {
	level := slog.LevelError
	switch os.Getenv("CAU_TEST_DEBUG") {
	case "":
	case "warn": // the warnings alone: what went wrong in a run of hundreds of endpoints
		level = slog.LevelWarn
	default:
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
