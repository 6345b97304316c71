package signaling_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/bridge/control"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/presence"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/rooms/storetest"
	"github.com/cau-project/cau/signaling"
)

// Tests of the races found by reading signaling (issue 9). Each failed under -race (or
// hung) before its fix.

// scriptedBridge registers on /bridge like a `cau bridge` process and answers every
// create_peer with peer_failed at once: a bridge whose media stack refuses every peer. It
// drives the real control socket; only its answers are scripted.
func scriptedBridge(t *testing.T, url, id, site string, keys auth.Keys) {
	t.Helper()
	tok, err := keys.Sign(control.BridgeClaims(ids.SiteID(site), ""), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ws, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	var mu sync.Mutex
	push := func(kind protocol.Kind, data any) {
		b, _ := protocol.Encode(kind, "", data)
		mu.Lock()
		defer mu.Unlock()
		_ = ws.WriteMessage(websocket.TextMessage, b)
	}
	push(protocol.KindBridgeRegister, json.RawMessage(fmt.Sprintf(`{"id":%q,"site":%q}`, id, site)))
	done := make(chan struct{})
	t.Cleanup(func() { _ = ws.Close(); <-done })
	go func() {
		t := time.NewTicker(300 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				push(protocol.KindBridgeHeartbeat, protocol.BridgeHeartbeat{})
			}
		}
	}()
	go func() {
		defer close(done)
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			env, err := protocol.Decode(b)
			if err != nil || env.Kind != protocol.KindCreatePeer {
				continue
			}
			var ref struct {
				Peer json.RawMessage `json:"peer"`
			}
			_ = protocol.DecodeData(env, &ref)
			push(protocol.KindPeerFailed, map[string]any{"peer": ref.Peer, "reason": "scripted failure"})
		}
	}()
}

// TestPeerFailureDuringJoin: a bridge reports an endpoint's peer failed while the join
// that created it is still running. The failure reaches the session on the bridge's
// reader goroutine; it used to read the session's meeting and logger while handleJoin was
// still writing them (a data race, or a nil meeting). Now the endpoint is told to go, and
// no ghost participant stays in the meeting.
func TestPeerFailureDuringJoin(t *testing.T) {
	c := startCascade(t)
	scriptedBridge(t, c.url+"/bridge", "br-bad", "d1", c.keys)
	eventually(t, 5*time.Second, func() string {
		if _, ok := c.sig.Bridges()["br-bad"]; !ok {
			return "the scripted bridge did not register"
		}
		return ""
	})
	for i := range 5 {
		conn, resp, err := websocket.DefaultDialer.Dial(c.ws, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		send(t, conn, fmt.Sprintf(`{"v":1,"type":"join","id":"1","data":{"token":%q}}`, c.token(t, "m1", "d1", fmt.Sprint("d1-", i))))
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				break // closed: the media connection failed
			}
		}
		_ = conn.Close()
	}
	eventually(t, 5*time.Second, func() string {
		if ps := c.sig.Participants("m1"); len(ps) != 0 {
			return fmt.Sprintf("%d participants stayed in the meeting after their peers failed", len(ps))
		}
		return ""
	})
}

// gatedPresence is the real Redis presence with a hook in Follow, to hold a meeting's
// creation at the moment it reads the other nodes.
type gatedPresence struct {
	signaling.Presence
	follow func(ctx context.Context, meeting ids.MeetingID, fn func(presence.Event)) ([]presence.Event, error)
}

func (g *gatedPresence) Follow(ctx context.Context, meeting ids.MeetingID, fn func(presence.Event)) ([]presence.Event, error) {
	return g.follow(ctx, meeting, fn)
}

// redisPresence is nodePresence until the test ends.
func redisPresence(t *testing.T, addr string) signaling.Presence {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return nodePresence(ctx, t, addr)
}

// TestPresenceChangeWhileFollowing: another node's participant changes while this node
// is still reading who is on the other nodes. The change is delivered on the presence
// goroutine, under the meeting's lock; the list used to be stored without it (a data
// race on the meeting's remote participants).
func TestPresenceChangeWhileFollowing(t *testing.T) {
	addr := storetest.StartRedis(t)
	ctx := context.Background()
	other := redisPresence(t, addr) // another signaling node
	remote := protocol.Participant{ID: "p-other", Name: "Xã B", Site: "xa-b", Role: "room"}
	if err := other.Announce(ctx, "m1", remote, remote.ID); err != nil {
		t.Fatal(err)
	}
	mine := redisPresence(t, addr)
	gate := &gatedPresence{Presence: mine}
	gate.follow = func(ctx context.Context, meeting ids.MeetingID, fn func(presence.Event)) ([]presence.Event, error) {
		// arrived closes once the meeting has taken the change in (fn returned), so the
		// list below is returned while the change waits in the meeting's early events:
		// the path this test is about, every run. Closed before fn, the list could win
		// the meeting's lock first and the change came after the join instead (the
		// client then overwrote it with joined's list: client.applyJoined).
		arrived := make(chan struct{})
		var once sync.Once
		list, err := mine.Follow(ctx, meeting, func(ev presence.Event) {
			fn(ev)
			once.Do(func() { close(arrived) })
		})
		if err != nil {
			return nil, err
		}
		muted := remote
		muted.Muted = []protocol.Source{protocol.SourceMicrophone}
		if err := other.Announce(ctx, meeting, muted, muted.ID); err != nil {
			return nil, err
		}
		select {
		case <-arrived:
		case <-time.After(5 * time.Second):
			return nil, fmt.Errorf("the other node's change did not arrive")
		}
		return list, nil
	}
	ts := startServer(t, func(c *signaling.Config) { c.Presence = gate })
	a := ts.join(t, "m1", "xa-a", "Xã A")
	eventually(t, 5*time.Second, func() string {
		p, ok := a.Participants()["p-other"]
		if !ok {
			return "Xã A does not see the participant on the other node"
		}
		if len(p.Muted) != 1 {
			return fmt.Sprintf("the other node's participant shows muted %v, want its latest change (microphone)", p.Muted)
		}
		return ""
	})
}

// TestSlowPresenceDoesNotBlockOtherMeetings: creating a meeting reads the other nodes
// from Redis. That used to happen under the server's lock, so one slow Redis call held
// every join to every meeting, and every status read (the monitor's, each second).
func TestSlowPresenceDoesNotBlockOtherMeetings(t *testing.T) {
	addr := storetest.StartRedis(t)
	mine := redisPresence(t, addr)
	entered, release := make(chan struct{}), make(chan struct{})
	gate := &gatedPresence{Presence: mine}
	gate.follow = func(ctx context.Context, meeting ids.MeetingID, fn func(presence.Event)) ([]presence.Event, error) {
		if meeting == "stuck" {
			close(entered)
			<-release // Redis is slow for this meeting
		}
		return mine.Follow(ctx, meeting, fn)
	}
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	ts := startServer(t, func(c *signaling.Config) { c.Presence = gate })
	t.Cleanup(open) // before the server's cleanup, which would wait for the held join

	stuck := rawConn(t, ts)
	send(t, stuck, fmt.Sprintf(`{"v":1,"type":"join","id":"1","data":{"token":%q}}`, ts.token(t, "stuck", "xa-a", "A")))
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the join to the slow meeting did not reach presence")
	}

	joined := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		conn, resp, err := websocket.DefaultDialer.DialContext(ctx, ts.ws, nil)
		if err != nil {
			joined <- err
			return
		}
		_ = resp.Body.Close()
		// Open until the test ends: the participant count is read after the join.
		t.Cleanup(func() { _ = conn.Close() })
		b, _ := protocol.Encode(protocol.KindJoin, "1", protocol.Join{Token: ts.token(t, "other", "xa-b", "B")})
		if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
			joined <- err
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				joined <- err
				return
			}
			if env, err := protocol.Decode(b); err == nil && env.Kind == protocol.KindJoined {
				joined <- nil
				return
			}
		}
	}()
	// Generous: the box is loaded; before the fix this waited for the release, forever.
	select {
	case err := <-joined:
		if err != nil {
			t.Fatalf("join to another meeting: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a join to another meeting waited for the slow meeting's Redis call")
	}
	if n := len(ts.sig.Participants("other")); n != 1 {
		t.Fatalf("meeting other has %d participants, want 1", n)
	}
	open()
	if env := readEnvelope(t, stuck); env.Kind != protocol.KindJoined {
		t.Fatalf("the slow meeting's join got %s, want joined", env.Kind)
	}
}

// TestFailedJoinClosesSocket (issue 12, finding 8): a join that fails on the server's side
// (here: no bridge to place the endpoint on) used to leave the socket open and the
// session half-joined: its identity set, no peer, no place in the meeting, every later
// message failing and a second join refused as "already joined". Now the join is
// answered with an error and the socket is closed with 1013 (try again later), so the
// client comes back with a fresh session.
func TestFailedJoinClosesSocket(t *testing.T) {
	ts := startServer(t, func(c *signaling.Config) { c.Bridge = nil })
	conn, resp, err := websocket.DefaultDialer.Dial(ts.ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = resp.Body.Close()
	join, err := protocol.Encode(protocol.KindJoin, "j1", protocol.Join{Token: ts.token(t, "m1", "commune-1", "Xã 1")})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.WriteMessage(websocket.TextMessage, join); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var gotError bool
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseTryAgainLater {
				t.Fatalf("socket ended with %v, want close %d", err, websocket.CloseTryAgainLater)
			}
			break
		}
		env, err := protocol.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		if env.Kind == protocol.KindJoined {
			t.Fatal("joined without a bridge")
		}
		gotError = gotError || env.Kind == protocol.KindError
	}
	if !gotError {
		t.Fatal("the failed join was not answered with an error")
	}
}
