package bridge

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/internal/testutil"
)

// TestSenderOutlivesASlowReader: signaling that reads nothing for longer than the 5 s a
// write used to be given (its process starved, its reader busy) while the bridge queues
// 20 MiB of messages, more than the sockets buffer, and a heartbeat every 10 ms. The
// control socket stays up, every message arrives in order, pings keep going out, and the
// heartbeats that waited were coalesced to the latest.
func TestSenderOutlivesASlowReader(t *testing.T) {
	const stall = 5500 * time.Millisecond
	got := make(chan []string, 1)
	pings := make(chan int, 1)
	release := make(chan struct{}) // the server holds the socket open until the checks are done
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer ws.Close()
		n := 0
		ws.SetPingHandler(func(string) error { n++; return nil })
		time.Sleep(stall)
		var msgs []string
		for {
			_ = ws.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, b, err := ws.ReadMessage()
			if err != nil {
				break
			}
			msgs = append(msgs, string(b[:min(len(b), 16)]))
		}
		pings <- n
		got <- msgs
		<-release
	}))
	defer hs.Close()
	defer close(release)
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	s := newSender(ws, testutil.Logger())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { s.run(ctx); close(done) }()

	const n, size = 2048, 10 << 10
	pad := strings.Repeat("x", size)
	beats := 0
	for i := range n {
		s.push([]byte(fmt.Sprintf("msg %06d %s", i, pad)), false)
		if i%4 == 0 {
			s.push([]byte(fmt.Sprintf("beat %05d", beats)), true)
			beats++
			time.Sleep(10 * time.Millisecond) // a heartbeat every 10 ms, for 5 s
		}
	}
	msgs := <-got
	select {
	case <-done:
		t.Fatal("the sender gave up on a reader that was only slow")
	default:
	}
	next, beatsGot := 0, 0
	for _, m := range msgs {
		switch {
		case strings.HasPrefix(m, "msg "):
			if want := fmt.Sprintf("msg %06d", next); m[:10] != want {
				t.Fatalf("message %q arrived where %q was due", m[:10], want)
			}
			next++
		case strings.HasPrefix(m, "beat "):
			beatsGot++
		}
	}
	if next != n {
		t.Errorf("%d of %d messages arrived", next, n)
	}
	if beatsGot == 0 || beatsGot >= beats {
		t.Errorf("%d of %d heartbeats were written: want the waiting ones coalesced, the latest sent", beatsGot, beats)
	}
	if p := <-pings; p == 0 {
		t.Error("no ping reached the reader")
	}
	t.Logf("%d messages of %d KiB in order, %d of %d heartbeats written after a %v stall", next, size>>10, beatsGot, beats, stall)
}
