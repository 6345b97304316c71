package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: each subcommand's
// servers, bridges and stores must stop when it returns.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
