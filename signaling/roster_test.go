package signaling_test

import (
	"fmt"
	"net"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/sfu"
	"github.com/cau-project/cau/signaling"
)

// smallSendBuffers accepts connections whose kernel send buffer is a few KiB (the
// kernel's own sizing absorbed a whole ramp's news on loopback), so that the server's
// writes to an endpoint that stops reading block soon, as they do over a real WAN link.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(8 << 10)
	}
	return c, err
}

// startSmallBufferServer is startServer with smallSendBuffers.
func startSmallBufferServer(t *testing.T, mutate func(*signaling.Config)) *testServer {
	t.Helper()
	b, err := sfu.New(sfu.Config{ICEUDPPort: 0, ICETCPPort: -1, IncludeLoopback: true, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := signaling.Config{Bridge: b, Keys: testKeys, Logger: logger()}
	mutate(&cfg)
	sig := signaling.New(cfg)
	hs := httptest.NewUnstartedServer(sig)
	hs.Listener = smallSendBuffers{hs.Listener}
	hs.Start()
	t.Cleanup(func() {
		sig.Close()
		hs.Close()
		_ = b.Close()
	})
	return &testServer{keys: testKeys, ws: "ws" + strings.TrimPrefix(hs.URL, "http"), sig: sig}
}

// rawJoin joins from a socket that reads (and drops) everything after joined, and
// returns its participant id.
func rawJoin(t *testing.T, ts *testServer, meeting, site string) (*websocket.Conn, string, error) {
	conn, resp, err := websocket.DefaultDialer.Dial(ts.ws, nil)
	if err != nil {
		return nil, "", err
	}
	_ = resp.Body.Close()
	// A long name, as some communes' are written out: the news are the larger.
	name := site + strings.Repeat(" Ủy ban nhân dân", 40)
	join := fmt.Sprintf(`{"v":1,"type":"join","id":"j","data":{"token":%q}}`, ts.token(t, meeting, site, name))
	if err := conn.WriteMessage(websocket.TextMessage, []byte(join)); err != nil {
		return nil, "", err
	}
	for {
		_, b, err := conn.ReadMessage()
		if err != nil {
			return nil, "", fmt.Errorf("%s: no joined: %w", site, err)
		}
		env, err := protocol.Decode(b)
		if err != nil || env.Kind != protocol.KindJoined {
			continue
		}
		var j protocol.Joined
		if err := protocol.DecodeData(env, &j); err != nil {
			return nil, "", err
		}
		go func() {
			for {
				if _, _, err := conn.ReadMessage(); err != nil {
					return
				}
			}
		}()
		return conn, j.Self.ID, nil
	}
}

// TestRosterRampSlowReader: 120 endpoints join one meeting as fast as 16 at a time can,
// each mutes and unmutes its microphone four times, a quarter of them leave again and a quarter
// mute their camera, while one endpoint reads nothing: 1,140 changes. Each change was one queued message (issue 11): the slow endpoint's 256-message
// queue overflowed and its socket was closed. Now its news wait as a set: its socket stays
// open, a handful of roster messages carry the ramp, and the roster it ends with is
// exactly the meeting (who is there, who muted).
func TestRosterRampSlowReader(t *testing.T) {
	ts := startSmallBufferServer(t, func(c *signaling.Config) { c.MaxSocketsPerAddr = -1 })
	slow := rawConn(t, ts)
	send(t, slow, fmt.Sprintf(`{"v":1,"type":"join","id":"j","data":{"token":%q}}`, ts.token(t, "ramp", "slow", "Chậm")))
	env := readEnvelope(t, slow)
	var joined protocol.Joined
	if env.Kind != protocol.KindJoined || protocol.DecodeData(env, &joined) != nil {
		t.Fatalf("slow endpoint's join: %s %s", env.Kind, env.Data)
	}
	const n = 120
	var (
		mu   sync.Mutex
		want = map[string][]protocol.Source{} // who should be listed, with what muted
		errs []error
		wg   sync.WaitGroup
	)
	work := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				conn, id, err := rawJoin(t, ts, "ramp", fmt.Sprintf("site-%03d", i))
				if err == nil {
					t.Cleanup(func() { _ = conn.Close() })
					// Its microphone muted and unmuted four times: eight changes, none left.
					for k := range 8 {
						if err == nil {
							err = conn.WriteMessage(websocket.TextMessage,
								fmt.Appendf(nil, `{"v":1,"type":"mute","data":{"source":"microphone","muted":%t}}`, k%2 == 0))
						}
					}
				}
				if err == nil {
					switch i % 4 {
					case 0: // leaves again
						err = conn.WriteMessage(websocket.TextMessage, []byte(`{"v":1,"type":"leave"}`))
					case 1: // mutes its camera
						err = conn.WriteMessage(websocket.TextMessage, []byte(`{"v":1,"type":"mute","data":{"source":"camera","muted":true}}`))
					}
				}
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, err)
				case i%4 == 1:
					want[id] = []protocol.Source{protocol.SourceCamera}
				case i%4 != 0:
					want[id] = nil
				}
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	t.Logf("ramp: %d joins in %v", n, time.Since(start).Round(time.Millisecond))
	if len(errs) > 0 {
		t.Fatalf("%d joins failed, first: %v", len(errs), errs[0])
	}

	// Now the slow endpoint reads: until its roster is the meeting's, or 10 s.
	messages := readRoster(t, slow, joined.Participants, want)
	// The set absorbed the ramp: a few messages went out before the socket's buffers
	// filled, the rest in one set (split to stay under MaxMessageBytes).
	if changes := n + 8*n + n/4 + n/4; messages > changes/5 {
		t.Errorf("%d roster messages for %d changes: the news were not coalesced", messages, changes)
	}

	// One more joins: the list (with the slow endpoint) is more than a joined message
	// carries, and the rest comes in roster messages right behind it.
	want[joined.Self.ID] = nil
	late := rawConn(t, ts)
	send(t, late, fmt.Sprintf(`{"v":1,"type":"join","id":"j","data":{"token":%q}}`, ts.token(t, "ramp", "late", "Muộn")))
	env = readEnvelope(t, late)
	var lateJoined protocol.Joined
	if env.Kind != protocol.KindJoined || protocol.DecodeData(env, &lateJoined) != nil {
		t.Fatalf("late join: %s %s", env.Kind, env.Data)
	}
	if lateJoined.More == 0 || len(lateJoined.Participants)+lateJoined.More != len(want) {
		t.Errorf("joined lists %d participants, %d more to follow; the meeting has %d",
			len(lateJoined.Participants), lateJoined.More, len(want))
	}
	readRoster(t, late, lateJoined.Participants, want)
}

// readRoster reads conn's messages (none may exceed MaxMessageBytes: Decode checks) and
// applies its roster messages to first (joined's list) until the roster is want (ids,
// with the sources they muted), or fails after 10 s. It returns how many it read.
func readRoster(t *testing.T, conn *websocket.Conn, first []protocol.Participant, want map[string][]protocol.Source) int {
	t.Helper()
	have := map[string]protocol.Participant{}
	for _, p := range first {
		have[p.ID] = p
	}
	messages := 0
	differs := func() string {
		if len(have) != len(want) {
			return fmt.Sprintf("%d listed, want %d", len(have), len(want))
		}
		for id, muted := range want {
			if p, ok := have[id]; !ok || !slices.Equal(p.Muted, muted) {
				return fmt.Sprintf("%s: listed %v with %v muted, want %v muted", id, ok, p.Muted, muted)
			}
		}
		return ""
	}
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(10 * time.Second))
	for differs() != "" {
		_, b, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("socket after %d roster messages: %v; its roster: %s", messages, err, differs())
		}
		env, err := protocol.Decode(b)
		if err != nil {
			t.Fatalf("bad message from the server: %v", err)
		}
		if env.Kind != protocol.KindRoster {
			continue
		}
		messages++
		var r protocol.Roster
		if err := protocol.DecodeData(env, &r); err != nil {
			t.Fatal(err)
		}
		for _, p := range r.Participants {
			have[p.ID] = p
		}
		for _, id := range r.Left {
			if _, ok := have[id]; !ok {
				t.Errorf("told that %s left, never told it came", id)
			}
			delete(have, id)
		}
	}
	t.Logf("%d participants in %d roster messages, read in %v", len(have), messages, time.Since(start).Round(time.Millisecond))
	return messages
}
