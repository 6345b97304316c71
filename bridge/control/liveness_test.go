package control

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/bridge"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/protocol"
)

// liveBridge registers a bridge over a real socket (beating every beatMillis if > 0) and
// reads (and drops) what signaling sends until the socket ends. stop ends its beats, as
// SIGSTOP would: the socket stays open.
func liveBridge(t *testing.T, url, id string, beatMillis int) (ws *websocket.Conn, stop func()) {
	t.Helper()
	ws, kind, code := dialRegisterMsg(t, url, sign(t, BridgeClaims("d1", "")),
		protocol.BridgeRegister{ID: ids.BridgeID("br-" + id), Site: "d1", BeatMillis: beatMillis})
	if kind != protocol.KindBridgeRegistered {
		t.Fatalf("register: %s %s", kind, code)
	}
	t.Cleanup(func() { _ = ws.Close() })
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	quit := make(chan struct{})
	if beatMillis > 0 {
		go func() {
			tick := time.NewTicker(time.Duration(beatMillis) * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-quit:
					return
				case <-tick.C:
					_ = ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second))
				}
			}
		}()
	}
	return ws, func() { close(quit) }
}

// TestHungBridgeDetected (issue 12: a hung bridge's endpoints move in under a second): a
// bridge that beats stays up while signaling's handler of its heartbeat is busy for three
// timeouts (the beats wait in the socket; a loaded signaling must not misfire), and is
// declared down soon after its beats stop with its socket open (a SIGSTOP'd process). The
// time from the last beat to the verdict is logged (the default timeout is 500 ms).
func TestHungBridgeDetected(t *testing.T) {
	down := make(chan time.Time, 1)
	slow := make(chan struct{}, 1)
	slow <- struct{}{}
	url := serve(t, Config{
		Registered: func(*Remote) (bridge.Events, error) { return bridge.Events{}, nil },
		Heartbeat: func(*Remote, protocol.BridgeHeartbeat) {
			select {
			case <-slow: // the first heartbeat's handler is slow
				time.Sleep(3 * DefaultTimeout)
			default:
			}
		},
		Down: func(_ *Remote, why string) {
			if why != "heartbeat timeout" {
				t.Errorf("down: %q, want heartbeat timeout", why)
			}
			down <- time.Now()
		},
	})
	ws, stop := liveBridge(t, url, "hung", int(bridge.BeatInterval/time.Millisecond))
	b, _ := protocol.Encode(protocol.KindBridgeHeartbeat, "", protocol.BridgeHeartbeat{})
	if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
	select {
	case <-down:
		t.Fatal("a beating bridge was declared down while signaling's handler was busy")
	case <-time.After(4 * DefaultTimeout):
	}
	stop()
	stopped := time.Now()
	select {
	case at := <-down:
		t.Logf("HUNG BRIDGE: declared down %v after its beats stopped (timeout %v, beats every %v)",
			at.Sub(stopped).Round(time.Millisecond), DefaultTimeout, bridge.BeatInterval)
	case <-time.After(2 * HardTimeout):
		t.Fatal("a bridge whose beats stopped was not declared down")
	}
}

// TestBridgeWithoutBeatsKeepsHeartbeatTimeout: a bridge that does not announce beats (an
// older one, whose heartbeats come every second) is not declared down after a silence of
// twice the beating timeout, only after HardTimeout.
func TestBridgeWithoutBeatsKeepsHeartbeatTimeout(t *testing.T) {
	down := make(chan time.Time, 1)
	url := serve(t, Config{
		Registered: func(*Remote) (bridge.Events, error) { return bridge.Events{}, nil },
		Down:       func(*Remote, string) { down <- time.Now() },
	})
	_, _ = liveBridge(t, url, "old", 0)
	start := time.Now()
	select {
	case at := <-down:
		if at.Sub(start) < 2*DefaultTimeout {
			t.Fatalf("a bridge without beats was declared down after %v", at.Sub(start))
		}
	case <-time.After(2 * HardTimeout):
		t.Fatal("a silent bridge without beats was not declared down")
	}
}

// TestSlackFollowsRecentStalls: the watchdog's slack is twice the longest silence heard
// in the last one to two gapSpans (a bridge behind a lossy link, whose TCP stalls now and
// then, gets that much more time), and a stall is forgotten after two spans.
func TestSlackFollowsRecentStalls(t *testing.T) {
	rb := &Remote{}
	t0 := time.Unix(1000, 0)
	rb.lastSeen.Store(t0.UnixNano())
	at := t0
	beat := func(after time.Duration) time.Duration {
		at = at.Add(after)
		rb.heard(at)
		return time.Duration(rb.slack.Load())
	}
	if got := beat(100 * time.Millisecond); got != 200*time.Millisecond {
		t.Fatalf("slack after 100 ms beats: %v, want 200ms", got)
	}
	if got := beat(700 * time.Millisecond); got != 1400*time.Millisecond {
		t.Fatalf("slack after a 700 ms stall: %v, want 1.4s", got)
	}
	for range 2*int(gapSpan/(200*time.Millisecond)) + 1 {
		beat(200 * time.Millisecond)
	}
	if got := beat(100 * time.Millisecond); got != 400*time.Millisecond {
		t.Fatalf("slack after two spans of 200 ms beats: %v, want 400ms (the stall forgotten)", got)
	}
}
