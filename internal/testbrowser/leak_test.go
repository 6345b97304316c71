package testbrowser_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: a tab's console
// reader must end with its tab, and chromedp's with the browser.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
