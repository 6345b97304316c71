package testbrowser

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/internal/testutil"
)

// Firefox is driven over WebDriver BiDi, the W3C protocol Firefox speaks natively
// (--remote-debugging-port): a WebSocket carrying JSON commands. This file is the small
// subset the browser tests need (navigate, evaluate, console log), so the tests need no
// Node, no npm packages and no geckodriver: only the firefox-esr package, the same in CI
// and on a developer's machine.

// FirefoxPath finds Firefox (ESR or current), or skips the test (fails it under CI=true).
func FirefoxPath(t testing.TB) string {
	t.Helper()
	return testutil.Tool(t, "firefox-esr", "firefox-esr", "firefox")
}

// FirefoxPrefs are the preferences a test Firefox starts with: fake camera and
// microphone without a permission prompt, autoplay allowed, and none of the background
// traffic (updates, telemetry) a fresh profile would start.
var FirefoxPrefs = map[string]any{
	"media.navigator.streams.fake":               true,
	"media.navigator.permission.disabled":        true,
	"media.autoplay.default":                     0,
	"media.autoplay.blocking_policy":             0,
	"app.update.enabled":                         false,
	"browser.shell.checkDefaultBrowser":          false,
	"datareporting.policy.dataSubmissionEnabled": false,
	"toolkit.telemetry.reportingpolicy.firstRun": false,
	"browser.startup.homepage_override.mstone":   "ignore",
	"remote.prefs.recommended":                   true,
}

// Firefox is one headless Firefox with one tab, driven over WebDriver BiDi.
type Firefox struct {
	cmd     *exec.Cmd
	conn    *websocket.Conn
	context string // the tab's browsing context id

	writeMu sync.Mutex // serialises writes on conn
	mu      sync.Mutex // guards nextID, waiting, closed
	nextID  int
	waiting map[int]chan bidiReply
	closed  bool
	done    chan struct{} // closed when the reader ends
}

type bidiReply struct {
	Type   string          `json:"type"` // success, error, event
	ID     int             `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  string          `json:"error"`
	Msg    string          `json:"message"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

var bidiListening = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)

// StartFirefox starts headless Firefox with a fresh profile holding prefs (FirefoxPrefs
// and extra), connects to it, and sends the tab's console output to logf. The browser is
// stopped when the test ends.
func StartFirefox(t testing.TB, execPath string, extra map[string]any, logf func(format string, args ...any)) (*Firefox, error) {
	t.Helper()
	profile := t.TempDir()
	var prefs strings.Builder
	for _, m := range []map[string]any{FirefoxPrefs, extra} {
		for k, v := range m {
			b, _ := json.Marshal(v)
			fmt.Fprintf(&prefs, "user_pref(%q, %s);\n", k, b)
		}
	}
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(prefs.String()), 0o644); err != nil {
		return nil, fmt.Errorf("firefox profile: %w", err)
	}
	cmd := exec.Command(execPath, "--headless", "--no-remote", "--profile", profile,
		"--remote-debugging-port", "0", "about:blank")
	cmd.Env = append(os.Environ(), "MOZ_HEADLESS=1", "MOZ_CRASHREPORTER_DISABLE=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start firefox: %w", err)
	}
	f := &Firefox{cmd: cmd, waiting: map[int]chan bidiReply{}, done: make(chan struct{})}
	t.Cleanup(f.close)

	// Firefox prints the BiDi address on stderr; the rest of stderr goes to the log.
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if m := bidiListening.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
			logf("[firefox stderr] %s", line)
		}
	}()
	var url string
	select {
	case url = <-addr:
	case <-time.After(60 * time.Second):
		return nil, errors.New("firefox did not open its WebDriver BiDi port within 60 s")
	}
	f.conn, _, err = websocket.DefaultDialer.Dial(url+"/session", nil)
	if err != nil {
		return nil, fmt.Errorf("connect to firefox at %s: %w", url, err)
	}
	go f.read(logf)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := f.call(ctx, "session.new", map[string]any{"capabilities": map[string]any{
		"alwaysMatch": map[string]any{"acceptInsecureCerts": true, "unhandledPromptBehavior": "dismiss"}}}); err != nil {
		return nil, err
	}
	if _, err := f.call(ctx, "session.subscribe", map[string]any{"events": []string{"log.entryAdded"}}); err != nil {
		return nil, err
	}
	res, err := f.call(ctx, "browsingContext.getTree", map[string]any{"maxDepth": 0})
	if err != nil {
		return nil, err
	}
	var tree struct {
		Contexts []struct {
			Context string `json:"context"`
		} `json:"contexts"`
	}
	if err := json.Unmarshal(res, &tree); err != nil || len(tree.Contexts) == 0 {
		return nil, fmt.Errorf("firefox: no tab in %s (%v)", res, err)
	}
	f.context = tree.Contexts[0].Context
	return f, nil
}

// read dispatches replies to their callers and console entries to logf.
func (f *Firefox) read(logf func(string, ...any)) {
	defer close(f.done)
	for {
		var r bidiReply
		if err := f.conn.ReadJSON(&r); err != nil {
			f.mu.Lock()
			for id, ch := range f.waiting {
				ch <- bidiReply{Type: "error", Error: "closed", Msg: err.Error()}
				delete(f.waiting, id)
			}
			f.closed = true
			f.mu.Unlock()
			return
		}
		if r.Type == "event" {
			if r.Method == "log.entryAdded" {
				var e struct {
					Level string `json:"level"`
					Text  string `json:"text"`
				}
				_ = json.Unmarshal(r.Params, &e)
				logf("[firefox console %s] %s", e.Level, e.Text)
			}
			continue
		}
		f.mu.Lock()
		ch := f.waiting[r.ID]
		delete(f.waiting, r.ID)
		f.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
}

// call sends one command and waits for its reply.
func (f *Firefox) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	ch := make(chan bidiReply, 1)
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, fmt.Errorf("firefox %s: connection closed", method)
	}
	f.nextID++
	id := f.nextID
	f.waiting[id] = ch
	f.mu.Unlock()
	f.writeMu.Lock()
	err := f.conn.WriteJSON(map[string]any{"id": id, "method": method, "params": params})
	f.writeMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("firefox %s: %w", method, err)
	}
	select {
	case r := <-ch:
		if r.Type == "error" {
			return nil, fmt.Errorf("firefox %s: %s: %s", method, r.Error, r.Msg)
		}
		return r.Result, nil
	case <-ctx.Done():
		f.mu.Lock()
		delete(f.waiting, id)
		f.mu.Unlock()
		return nil, fmt.Errorf("firefox %s: %w", method, ctx.Err())
	}
}

// Navigate opens url in the tab and waits for the page to load.
func (f *Firefox) Navigate(ctx context.Context, url string) error {
	_, err := f.call(ctx, "browsingContext.navigate", map[string]any{
		"context": f.context, "url": url, "wait": "complete"})
	return err
}

// AddPreloadScript runs a JavaScript function declaration (e.g. "() => { ... }") in
// every page before the page's own scripts, from the next navigation on.
func (f *Firefox) AddPreloadScript(ctx context.Context, fn string) error {
	_, err := f.call(ctx, "script.addPreloadScript", map[string]any{"functionDeclaration": fn})
	return err
}

// Eval evaluates a JavaScript expression in the page (awaiting a promise) and decodes
// its JSON value into out (nil: ignore the value).
func (f *Firefox) Eval(ctx context.Context, js string, out any) error {
	res, err := f.call(ctx, "script.evaluate", map[string]any{
		"expression":   "(async () => JSON.stringify(await (" + js + ")))()",
		"target":       map[string]any{"context": f.context},
		"awaitPromise": true,
	})
	if err != nil {
		return err
	}
	var r struct {
		Type   string `json:"type"`
		Result struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"result"`
		ExceptionDetails struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return fmt.Errorf("firefox evaluate: %w", err)
	}
	if r.Type == "exception" {
		return fmt.Errorf("firefox evaluate %s: %s", js, r.ExceptionDetails.Text)
	}
	if out == nil || r.Result.Type != "string" {
		return nil
	}
	if err := json.Unmarshal([]byte(r.Result.Value), out); err != nil {
		return fmt.Errorf("firefox evaluate %s: decode %q: %w", js, r.Result.Value, err)
	}
	return nil
}

// WaitFor polls a JavaScript predicate every 100 ms until it is true or timeout passes.
func (f *Firefox) WaitFor(ctx context.Context, what, predicate string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		var ok bool
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		last = f.Eval(cctx, predicate, &ok)
		cancel()
		if last == nil && ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("firefox: %s: %w", what, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if last != nil {
		return fmt.Errorf("firefox: %s within %v: %w", what, timeout, last)
	}
	return fmt.Errorf("firefox: %s within %v: still false", what, timeout)
}

// Screenshot returns a PNG of the tab's viewport.
func (f *Firefox) Screenshot(ctx context.Context) ([]byte, error) {
	res, err := f.call(ctx, "browsingContext.captureScreenshot", map[string]any{"context": f.context})
	if err != nil {
		return nil, err
	}
	var r struct {
		Data []byte `json:"data"` // base64 in JSON: decoded by encoding/json into []byte
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return nil, fmt.Errorf("firefox screenshot: %w", err)
	}
	return r.Data, nil
}

// close ends the session and the process.
func (f *Firefox) close() {
	if f.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = f.call(ctx, "browser.close", map[string]any{})
		cancel()
		_ = f.conn.Close()
		<-f.done
	}
	exited := make(chan struct{})
	go func() { _ = f.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = f.cmd.Process.Kill()
		<-exited
	}
}
