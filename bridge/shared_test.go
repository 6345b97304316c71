package bridge

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/internal/testmedia"
	"github.com/cau-project/cau/protocol"
)

// fakeNode is a signaling node's end of one control socket, driven by the test.
type fakeNode struct {
	t    *testing.T
	conn *websocket.Conn
	seq  int
}

// startFakeNode serves /bridge for one bridge connection and returns its URL and the node
// once the bridge registered.
func startFakeNode(t *testing.T) (string, <-chan *fakeNode) {
	t.Helper()
	nodes := make(chan *fakeNode, 1)
	up := websocket.Upgrader{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		n := &fakeNode{t: t, conn: c}
		_, msg, err := c.ReadMessage() // register
		if err != nil {
			return
		}
		env, err := protocol.DecodeControl(msg)
		if err != nil || env.Kind != protocol.KindBridgeRegister {
			t.Errorf("first message %s (%v), want register", env.Kind, err)
			return
		}
		reply, _ := protocol.Encode(protocol.KindBridgeRegistered, env.ID, nil)
		if c.WriteMessage(websocket.TextMessage, reply) != nil {
			return
		}
		select {
		case nodes <- n:
		default: // a reconnection after the test dropped the first: left unread
		}
	}))
	t.Cleanup(hs.Close)
	return "ws" + strings.TrimPrefix(hs.URL, "http"), nodes
}

func (n *fakeNode) send(kind protocol.Kind, id string, data any) {
	b, err := protocol.Encode(kind, id, data)
	if err != nil {
		n.t.Fatal(err)
	}
	if err := n.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		n.t.Fatal(err)
	}
}

// request sends a command about peer and returns its reply (an answer or an error).
func (n *fakeNode) request(kind protocol.Kind, peer ids.PeerID) protocol.Envelope {
	n.t.Helper()
	n.seq++
	id := "q" + string(rune('0'+n.seq))
	n.send(kind, id, protocol.PeerRef{Peer: peer})
	_ = n.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, b, err := n.conn.ReadMessage()
		if err != nil {
			n.t.Fatalf("waiting for the reply to %s: %v", kind, err)
		}
		env, err := protocol.DecodeControl(b)
		if err != nil {
			n.t.Fatal(err)
		}
		if env.ID == id {
			return env
		}
	}
}

func errorCode(env protocol.Envelope) string {
	if env.Kind != protocol.KindError {
		return ""
	}
	var e protocol.Error
	_ = protocol.DecodeData(env, &e)
	return e.Code
}

// TestSharedAgentHandsPeersOver is the bridge's half of resuming on another signaling
// node (issue 16): one bridge process registered with two nodes has one set of peers;
// each peer answers only the node that created or last adopted it. Node b adopts node
// a's peer (a's commands for it are refused from then on), releases it, and it lives
// as an orphan for the grace, adoptable, then is closed. A lost connection's peers are
// orphans too.
func TestSharedAgentHandsPeersOver(t *testing.T) {
	const grace = 300 * time.Millisecond
	sh := NewShared(testmedia.NewBridge(t), SharedConfig{Grace: grace, Logger: testmedia.Logger()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
	})
	var nodes []*fakeNode
	for range 2 {
		url, ch := startFakeNode(t)
		go func() {
			_ = Run(ctx, ClientConfig{SignalURL: url, ID: "br", Site: "prov", Logger: testmedia.Logger(), Shared: sh})
			done <- struct{}{}
		}()
		nodes = append(nodes, <-ch)
	}
	a, b := nodes[0], nodes[1]
	peer := ids.ForEndpoint("p1", 1)
	if env := a.request(protocol.KindCreatePeer, peer); env.Kind != protocol.KindAnswer {
		t.Fatalf("a creates the peer: %+v", env)
	}
	if code := errorCode(b.request(protocol.KindClosePeer, peer)); code != protocol.CodeUnknownPeer {
		t.Errorf("b closes a's peer: code %q, want %s", code, protocol.CodeUnknownPeer)
	}
	env := b.request(protocol.KindAdoptPeer, peer)
	var st protocol.PeerState
	if env.Kind != protocol.KindAnswer || protocol.DecodeData(env, &st) != nil {
		t.Fatalf("b adopts a's peer: %+v", env)
	}
	if code := errorCode(a.request(protocol.KindClosePeer, peer)); code != protocol.CodeUnknownPeer {
		t.Errorf("a closes the peer b adopted: code %q, want %s", code, protocol.CodeUnknownPeer)
	}
	// Released, it forwards on as an orphan for the grace: adoptable, then closed.
	b.send(protocol.KindReleasePeer, "", protocol.PeerRef{Peer: peer})
	if env := a.request(protocol.KindAdoptPeer, peer); env.Kind != protocol.KindAnswer {
		t.Fatalf("a adopts the peer b released: %+v", env)
	}
	if len(sh.Agent().Peers()) != 1 {
		t.Fatalf("the bridge holds %d peers, want 1", len(sh.Agent().Peers()))
	}
	// a's connection is lost: the peer is an orphan, then closed after the grace.
	_ = a.conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for len(sh.Agent().Peers()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the lost connection's peer still lives %v after the grace", 10*time.Second)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := errorCode(b.request(protocol.KindAdoptPeer, peer)); code != protocol.CodeUnknownPeer {
		t.Errorf("b adopts a closed orphan: code %q, want %s", code, protocol.CodeUnknownPeer)
	}
}
