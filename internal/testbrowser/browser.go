package testbrowser

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cau-project/cau/internal/testutil"
)

// Log collects the lines of a test's server and browsers. Its methods may be called from
// any goroutine, also after the test returned (a browser's console may still be talking).
type Log struct {
	testutil.LockedBuffer
}

// Printf appends one line.
func (l *Log) Printf(format string, args ...any) {
	_, _ = fmt.Fprintf(l, format+"\n", args...)
}

// KeepLog writes the log to dir/log.txt when the test ends and, if it failed, its tail to
// the test's output. Call it before starting servers and browsers: cleanups run last
// first, so the log is written after they are gone.
func KeepLog(t testing.TB, dir string, log *Log) {
	t.Helper()
	t.Cleanup(func() {
		_ = os.WriteFile(filepath.Join(dir, "log.txt"), []byte(log.String()), 0o644)
		if t.Failed() {
			t.Logf("artifacts in %s; server and browser log:\n%s", dir, log.Tail(40000))
		}
	})
}

// Options says how to start a browser.
type Options struct {
	// Name labels the browser in logs and screenshot file names.
	Name string
	// Log receives the page's console messages; nil: they are dropped.
	Log *Log
	// Media gives the browser a fake camera and microphone, grants them without asking,
	// and lets media play with sound without a click: a participant's browser.
	Media bool
	// Lang is the browser's language list (Accept-Language and navigator.languages), e.g.
	// "vi-VN,vi"; empty: Chromium's default (en-US).
	Lang string
	// Width and Height of the window; zero: 1280×720.
	Width, Height int
	// ExecPath runs this instead of the Chromium found (a wrapper that starts it in a
	// network namespace, say); empty: ChromiumPath.
	ExecPath string
	// Flags are extra command-line flags (name → value, true for a bare flag).
	Flags map[string]any
}

// Browser is one tab of a headless Chromium.
type Browser struct {
	// Name labels the browser in logs and screenshot file names.
	Name  string
	ctx   context.Context
	log   *Log
	close context.CancelFunc // a tab's; nil for the first tab, closed with the browser
	// networkChanged is set by the console reader when a load failed with
	// ERR_NETWORK_CHANGED (Open reloads once then); a pointer so that its tabs' readers
	// are each their own.
	networkChanged *atomic.Bool
}

// Start starts a headless Chromium with a fresh profile and one tab; it is closed when
// the test ends. It does not call t.Fatal, so it may run on any goroutine (start several
// at once: on two cores each start takes seconds). It skips the test when Chromium is
// missing (fails it under CI=true): call it, or ChromiumPath, on the test's goroutine
// first in that case.
func Start(t testing.TB, o Options) (*Browser, error) {
	exec := o.ExecPath
	if exec == "" {
		exec = ChromiumPath(t)
	}
	w, h := o.Width, o.Height
	if w == 0 || h == 0 {
		w, h = 1280, 720
	}
	profile := t.TempDir() // registered before the cancel below, so removed after Chromium exits
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exec),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(w, h),
	)
	if o.Media {
		opts = append(opts,
			chromedp.Flag("use-fake-device-for-media-stream", true),
			chromedp.Flag("use-fake-ui-for-media-stream", true),
			chromedp.Flag("autoplay-policy", "no-user-gesture-required"))
	}
	if o.Lang != "" {
		opts = append(opts, chromedp.Flag("lang", o.Lang), chromedp.Flag("accept-lang", o.Lang))
	}
	for name, v := range o.Flags {
		opts = append(opts, chromedp.Flag(name, v))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the process to exit
	})
	b := &Browser{Name: o.Name, ctx: ctx, log: o.Log}
	if err := b.follow(); err != nil {
		return nil, fmt.Errorf("start chromium (%s): %w", o.Name, err)
	}
	return b, nil
}

// MustStart starts one browser per name at once (see Start), all with the options o
// but for the name; it fails the test if one does not start.
func MustStart(t testing.TB, o Options, names ...string) []*Browser {
	t.Helper()
	ChromiumPath(t) // skip (or fail under CI) here, on the test's goroutine
	bs := make([]*Browser, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() {
			oi := o
			oi.Name = n
			bs[i], errs[i] = Start(t, oi)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return bs
}

// Tab opens another tab in the same browser. It closes when the test ends, or earlier
// with Close (a server that waits for the page's open connections needs that first).
func (b *Browser) Tab(t testing.TB, name string) *Browser {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	tab := &Browser{Name: name, ctx: ctx, log: b.log, close: cancel, networkChanged: new(atomic.Bool)}
	if err := tab.follow(); err != nil {
		t.Fatalf("open a tab (%s): %v", name, err)
	}
	return tab
}

// Close closes a tab opened with Tab (a browser closes with its test).
func (b *Browser) Close() {
	if b.close != nil {
		b.close()
	}
}

// follow starts the tab (chromedp starts it on the first action) and copies its console
// to the log.
func (b *Browser) follow() error {
	if err := chromedp.Do(b.ctx); err != nil {
		return err
	}
	if b.networkChanged == nil {
		b.networkChanged = new(atomic.Bool)
	}
	go func() {
		for m, err := range chromedp.Console(b.ctx) {
			if err != nil {
				return
			}
			if strings.Contains(m.Text, "ERR_NETWORK_CHANGED") {
				b.networkChanged.Store(true)
			}
			if b.log != nil {
				b.log.Printf("[%s console] %s", b.Name, m)
			}
		}
	}()
	return nil
}

// Context is the tab's chromedp context, for what this harness does not wrap.
func (b *Browser) Context() context.Context { return b.ctx }

// Logf writes a line to the browser's log (if it has one), labelled with its name.
func (b *Browser) Logf(format string, args ...any) {
	if b.log != nil {
		b.log.Printf("[%s] "+format, append([]any{b.Name}, args...)...)
	}
}

// Run runs actions on the tab with a timeout.
func (b *Browser) Run(timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		return fmt.Errorf("%s: %w", b.Name, err)
	}
	return nil
}

// Open navigates to url and waits until the predicate (a JavaScript expression) is true.
//
// A page whose loads failed with ERR_NETWORK_CHANGED is loaded once more: Chromium aborts
// the loads in flight when an interface appears or goes (a test's network namespace and
// veth made or removed as the page loads), which a user would answer by reloading.
func (b *Browser) Open(url, what, predicate string, timeout time.Duration) error {
	for try := 0; ; try++ {
		if b.networkChanged != nil {
			b.networkChanged.Store(false)
		}
		if err := b.Run(30*time.Second, chromedp.Navigate(url)); err != nil {
			return fmt.Errorf("open %s: %w", url, err)
		}
		err := b.WaitFor(what, predicate, timeout)
		if err == nil || try > 0 || b.networkChanged == nil || !b.networkChanged.Load() {
			return err
		}
		b.Logf("loads failed with ERR_NETWORK_CHANGED (%v): loading the page again", err)
	}
}

// Click clicks the element with this id.
func (b *Browser) Click(id string) error {
	return b.Run(10*time.Second, chromedp.Click(chromedp.ID(id)))
}

// WaitFor polls a JavaScript predicate until it is true or the timeout passes. A page
// that navigates meanwhile (a reload, a language switch) is polled again once loaded.
func (b *Browser) WaitFor(what, predicate string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		ctx, cancel := context.WithTimeout(b.ctx, left+5*time.Second)
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](predicate,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(left)))
		cancel()
		if err == nil {
			return nil
		}
		if navigated(err) && time.Until(deadline) > 100*time.Millisecond {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		return fmt.Errorf("%s: %s within %v: %w", b.Name, what, timeout, err)
	}
}

// navigated reports whether err says the page's JavaScript context went away under an
// evaluation: the page navigated.
func navigated(err error) bool {
	s := err.Error()
	return strings.Contains(s, "Cannot find context with specified id") ||
		strings.Contains(s, "Execution context was destroyed") || strings.Contains(s, "Inspected target navigated")
}

// Eval evaluates a JavaScript expression on b's tab; a failure fails the test.
func Eval[T any](t testing.TB, b *Browser, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: evaluate %s: %v", b.Name, js, err)
	}
	return v
}

// Await evaluates a JavaScript expression that yields a promise and returns what it
// resolves to.
func Await[T any](b *Browser, js string, timeout time.Duration) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// Screenshot saves the tab's viewport as dir/<name>-<label>.png and returns the path.
func (b *Browser) Screenshot(dir, label string) (string, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		return "", fmt.Errorf("%s: screenshot %s: %w", b.Name, label, err)
	}
	path := filepath.Join(dir, b.Name+"-"+label+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return "", fmt.Errorf("screenshot: %w", err)
	}
	return path, nil
}

// Shot is Screenshot for pictures kept for people to look at: a failure is only logged.
func (b *Browser) Shot(t testing.TB, dir, label string) {
	t.Helper()
	if _, err := b.Screenshot(dir, label); err != nil {
		t.Log(err)
	}
}
