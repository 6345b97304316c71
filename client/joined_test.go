package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/protocol"
)

// TestChangeRightAfterJoinedIsKept: the server sends a participant's change (and a floor
// change) right behind joined, as signaling does when another node's change arrives while
// the endpoint joins. Both must show on top of joined's list, not be overwritten by it:
// joined used to be taken in by the goroutine waiting in Dial, after the read goroutine
// had already applied the change (signaling's TestPresenceChangeWhileFollowing failed
// under load: 2 of 180 runs). A scripted server: only its two answers matter here.
func TestChangeRightAfterJoinedIsKept(t *testing.T) {
	other := protocol.Participant{ID: "p-other", Name: "Xã B", Site: "xa-b", Role: "room"}
	muted := other
	muted.Muted = []protocol.Source{protocol.SourceMicrophone}
	done := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		_, b, err := ws.ReadMessage()
		if err != nil {
			return
		}
		env, err := protocol.Decode(b)
		if err != nil || env.Kind != protocol.KindJoin {
			t.Errorf("first message %q: %v", b, err)
			return
		}
		for _, m := range []struct {
			kind protocol.Kind
			id   string
			data any
		}{
			{protocol.KindJoined, env.ID, protocol.Joined{Meeting: "m1", Self: protocol.Participant{ID: "p-me", Name: "Xã A"},
				Participants: []protocol.Participant{other}, Floor: &protocol.FloorState{Version: 1}}},
			{protocol.KindRoster, "", protocol.Roster{Participants: []protocol.Participant{muted}}},
			{protocol.KindFloor, "", protocol.FloorState{Version: 2}},
		} {
			out, err := protocol.Encode(m.kind, m.id, m.data)
			if err != nil {
				t.Error(err)
				return
			}
			if err := ws.WriteMessage(websocket.TextMessage, out); err != nil {
				return
			}
		}
		<-done // open until the client has been read
	}))
	defer hs.Close()
	defer close(done)
	for i := range 10 { // the old order lost the change in most dials, not all
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), "token", Options{Loopback: true})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			p, f := c.Participants()["p-other"], c.Floor()
			if len(p.Muted) == 1 && f != nil && f.Version == 2 {
				break
			}
			if time.Now().After(deadline) {
				c.Close()
				t.Fatalf("dial %d: p-other muted %v, floor %+v: the change after joined was lost", i, p.Muted, f)
			}
			time.Sleep(5 * time.Millisecond)
		}
		c.Close()
	}
}
