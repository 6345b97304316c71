// Package testutil holds small helpers the packages' tests share.
package testutil

import (
	"testing"
	"time"
)

// Eventually polls cond every 50 ms until it returns "" or timeout passes, then fails the
// test with the last reason cond gave (STYLE habit 14: the string says what is missing).
func Eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var why string
	for time.Now().Before(deadline) {
		if why = cond(); why == "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %v: %s", timeout, why)
}
