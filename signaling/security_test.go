package signaling_test

// Tests of what a hostile but authenticated endpoint can try (issue 12).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/bridge/control"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/internal/peerconn"
	"github.com/cau-project/cau/internal/testpeer"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/signaling"
)

// loopbackAPI is a pion API that gathers only loopback candidates, like the client's.
func loopbackAPI(t *testing.T) *webrtc.API {
	t.Helper()
	return testpeer.API(t, nil, nil, testpeer.Loopback)
}

// forgedAudioBytes is the payload size of the attacker's audio: larger than the client
// synth's 80-byte audio, so a subscriber can tell whose packets it gets.
const forgedAudioBytes = 200

// TestPublisherCannotClaimAnotherParticipantsStream: a participant whose SDP names the
// chair's microphone key only in "a=ssrc:N msid:" lines (no "a=msid:" line, so the track
// id is the client's own) must not be heard as the chair. Its audio is its own stream.
func TestPublisherCannotClaimAnotherParticipantsStream(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	chair := ts.publisher(t, "m1", "tinh", "Chair")
	listener := ts.join(t, "m1", "xa", "Listener")
	attacker := ts.join(t, "m1", "huyen", "Attacker")
	chairMic := ids.StreamKey{Participant: ids.ParticipantID(chair.Self.ID), Source: protocol.SourceMicrophone}
	chairStream := chair.Self.Streams[protocol.SourceCamera]
	eventually(t, 15*time.Second, func() string { return receivesFrom(listener, chair, 20) })

	pc, err := peerconn.New(loopbackAPI(t), webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
		chairMic.String(), chairStream)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	var forged []string
	for _, line := range strings.SplitAfter(offer.SDP, "\n") {
		if !strings.HasPrefix(line, "a=msid:") {
			forged = append(forged, line)
		}
	}
	sdp := strings.Join(forged, "")
	if !strings.Contains(sdp, "msid:"+chairStream+" "+chairMic.String()) {
		t.Fatalf("pion's offer has no a=ssrc msid line naming %s:\n%s", chairMic, sdp)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	env, err := attacker.Request(rctx, protocol.KindOffer, protocol.Offer{SDP: sdp})
	if err != nil {
		t.Fatalf("forged offer: %v", err)
	}
	var ans protocol.Answer
	if err := protocol.DecodeData(env, &ans); err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.SDP}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		payload := make([]byte, forgedAudioBytes)
		payload[0] = 0x78
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for seq := uint16(0); ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 960}, Payload: payload})
			}
		}
	}()

	// The attacker's audio reaches the listener as the attacker's own stream...
	attackerStream := attacker.Self.Streams[protocol.SourceCamera]
	eventually(t, 15*time.Second, func() string {
		if s := listener.Stream(attackerStream, "audio"); s == nil || s.Packets.Load() < 20 {
			return "the listener does not receive the attacker's audio as the attacker's"
		}
		return ""
	})
	// ...and never as the chair's: every audio packet under the chair's stream is the
	// chair's 80-byte synth audio.
	keepsReceiving(t, listener, chair, "audio", 50, 10*time.Second)
	if s := listener.Stream(chairStream, "audio"); s.Bytes.Load() > 80*s.Packets.Load() {
		t.Fatalf("the listener hears another participant as the chair: %d bytes in %d packets under %s", s.Bytes.Load(),
			s.Packets.Load(), chairStream)
	}
}

// TestHostileSDPKeepsRemoteBridge: an offer of ~48 KiB of '<' (it grows ~6× when
// re-encoded as JSON for the bridge) is refused with an error to its sender, and the
// remote bridge keeps its control socket: the other endpoints on it keep their media
// without a reconnect.
func TestHostileSDPKeepsRemoteBridge(t *testing.T) {
	c := startCascade(t, "prov")
	chair := c.publisher(t, "m1", "prov", "chair")
	listener := c.join(t, "m1", "prov", "listener")
	eventually(t, 20*time.Second, func() string { return receivesFrom(listener, chair, 30) })
	if b := c.sig.Participants("m1"); len(b) != 2 {
		t.Fatalf("%d participants, want 2", len(b))
	}

	attacker := c.join(t, "m1", "prov", "attacker")
	sdp := `v=0\r\n` + strings.Repeat("<", 48<<10-5)
	msg := `{"v":1,"type":"offer","id":"evil","data":{"sdp":"` + sdp + `"}}`
	if len(msg) > protocol.MaxMessageBytes {
		t.Fatalf("the hostile message is %d bytes, over the endpoint limit", len(msg))
	}
	if err := attacker.SendRaw([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() string {
		for _, e := range attacker.Errors() {
			if e.Code == protocol.CodeBadSDP || e.Code == protocol.CodeBadMessage {
				return ""
			}
		}
		return "the attacker got no error for its offer"
	})
	keepsReceiving(t, listener, chair, "video", 60, 10*time.Second)
	if n := listener.Reconnects(); n != 0 {
		t.Fatalf("the listener was moved %d times: the bridge lost its control socket", n)
	}
	if _, ok := c.sig.Bridges()["br-prov"]; !ok {
		t.Fatal("br-prov is no longer registered")
	}
}

// TestBridgeTokenCannotJoin: a bridge's credential registers its bridge and does nothing
// else; the endpoint socket refuses it.
func TestBridgeTokenCannotJoin(t *testing.T) {
	ts := startServer(t, nil)
	c := control.BridgeClaims("prov", "br-prov")
	c.Meeting = "m1" // even naming a meeting
	tok, err := ts.keys.Sign(c, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, ts.ws, tok, client.Options{Loopback: true, Logger: logger()})
	if err == nil {
		cl.Close()
		t.Fatal("a bridge token joined a meeting")
	}
	if !strings.Contains(err.Error(), protocol.CodeUnauthorized) {
		t.Fatalf("join with a bridge token: %v, want %s", err, protocol.CodeUnauthorized)
	}
}

// TestPongsDoNotHoldUnjoinedSocket: a socket that never joins but keeps sending pongs
// (unsolicited pongs are legal WebSocket) is still closed at the join deadline.
func TestPongsDoNotHoldUnjoinedSocket(t *testing.T) {
	ts := startServer(t, func(c *signaling.Config) { c.JoinTimeout = time.Second })
	conn := rawConn(t, ts)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if conn.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second)) != nil {
					return
				}
			}
		}
	}()
	expectClose(t, conn, protocol.CloseJoinTimeout)
}

// TestCaps: a meeting refuses the join over its participant cap with code "capacity",
// and an address over its socket cap gets HTTP 429 until one of its sockets closes.
func TestCaps(t *testing.T) {
	ts := startServer(t, func(c *signaling.Config) { c.MaxParticipants = 2; c.MaxSocketsPerAddr = 3 })
	ts.join(t, "m1", "a", "A")
	ts.join(t, "m1", "b", "B")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := client.Dial(ctx, ts.ws, ts.token(t, "m1", "c", "C"), client.Options{Loopback: true, Logger: logger()})
	if err == nil || !strings.Contains(err.Error(), protocol.CodeCapacity) {
		t.Fatalf("third join of a 2-participant meeting: %v, want %s", err, protocol.CodeCapacity)
	}
	// Two sockets are open (A and B); the refused one has closed.
	eventually(t, 5*time.Second, func() string {
		conn, resp, err := websocket.DefaultDialer.Dial(ts.ws, nil)
		if err != nil {
			return fmt.Sprintf("the third socket: %v", err)
		}
		defer conn.Close()
		_ = resp.Body.Close()
		_, resp, err = websocket.DefaultDialer.Dial(ts.ws, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			return fmt.Sprintf("the fourth socket from one address: %v, want HTTP 429", err)
		}
		return ""
	})
}

// TestKioskKeepsItsRoom (issue 12, finding 6): a second session for a room's endpoint
// used to replace the kiosk's, and the kiosk gave up for the whole meeting. Now a session
// from the room's own device (Join.Device) yields only to the same device coming back;
// anyone else holding a token for the endpoint is refused with endpoint_in_use and the
// kiosk stays in the meeting.
func TestKioskKeepsItsRoom(t *testing.T) {
	ts := startServer(t, nil)
	roomToken := func() string {
		tok, err := ts.keys.Sign(auth.Claims{Use: auth.UseJoin, Meeting: "m1", Site: "commune-1", Name: "Phòng họp xã",
			Role: auth.RoleRoom, Endpoint: "room-c01"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	dial := func(device string) (*client.Client, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := client.Dial(ctx, ts.ws, roomToken(), client.Options{Loopback: true, Logger: logger(), Device: device})
		if err == nil {
			t.Cleanup(c.Close)
		}
		return c, err
	}
	watcher := ts.join(t, "m1", "central", "Chủ trì")
	kiosk, err := dial("kiosk-a")
	if err != nil {
		t.Fatal(err)
	}
	for _, device := range []string{"", "other-device"} {
		if _, err := dial(device); err == nil || !strings.Contains(err.Error(), protocol.CodeEndpointInUse) {
			t.Fatalf("a session from device %q while the kiosk is in: %v, want %s", device, err, protocol.CodeEndpointInUse)
		}
	}
	select {
	case <-kiosk.Done():
		t.Fatalf("the kiosk was put out: %v", kiosk.Err())
	case <-time.After(300 * time.Millisecond):
	}
	eventually(t, 5*time.Second, func() string {
		if n := len(watcher.Participants()); n != 1 {
			return fmt.Sprintf("the chair sees %d others, want the kiosk alone", n)
		}
		return ""
	})
	if _, err := dial("bad device!"); err == nil || !strings.Contains(err.Error(), protocol.CodeBadMessage) {
		t.Fatalf("a malformed device id: %v, want %s", err, protocol.CodeBadMessage)
	}
	// The kiosk itself coming back (a reload) replaces its old session at once.
	again, err := dial("kiosk-a")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-kiosk.Done():
		var ce *websocket.CloseError
		if !errors.As(kiosk.Err(), &ce) || ce.Code != protocol.CloseReplaced {
			t.Fatalf("the old kiosk session ended with %v, want close %d", kiosk.Err(), protocol.CloseReplaced)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the kiosk's reload did not replace its old session")
	}
	// Once the kiosk leaves, the endpoint is free for another session.
	again.Close()
	eventually(t, 10*time.Second, func() string {
		c, err := dial("")
		if err != nil {
			return fmt.Sprintf("a session after the kiosk left: %v", err)
		}
		c.Close()
		return ""
	})
}
