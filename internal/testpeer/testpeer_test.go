package testpeer_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/internal/testpeer"
)

// TestLoopbackPeersConnect: two peers built with API and Loopback connect with the
// non-trickled SDP of Offer and Answer (every candidate in it, all on loopback) and open
// a data channel between them.
func TestLoopbackPeersConnect(t *testing.T) {
	api := testpeer.API(t, nil, nil, testpeer.Loopback)
	offerer, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer offerer.Close()
	answerer, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer answerer.Close()

	opened := make(chan string, 1)
	answerer.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnMessage(func(msg webrtc.DataChannelMessage) {
			select {
			case opened <- string(msg.Data):
			default:
			}
		})
	})
	dc, err := offerer.CreateDataChannel("chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	dc.OnOpen(func() { _ = dc.SendText("xin chào") })

	offer := testpeer.Offer(t, offerer)
	if err := answerer.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		t.Fatal(err)
	}
	answer := testpeer.Answer(t, answerer)
	if err := offerer.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	for _, sdp := range []string{offer, answer} {
		desc := webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}
		parsed, err := desc.Unmarshal()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range parsed.MediaDescriptions {
			for _, a := range m.Attributes {
				if a.Key != "candidate" {
					continue
				}
				n++
				if !strings.Contains(a.Value, " 127.0.0.1 ") {
					t.Errorf("a candidate off loopback: %s", a.Value)
				}
			}
		}
		if n == 0 {
			t.Errorf("SDP without candidates (not gathered before it was returned):\n%s", sdp)
		}
	}
	select {
	case got := <-opened:
		if got != "xin chào" {
			t.Errorf("received %q", got)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no message over the data channel in 20 s (offerer %s, answerer %s)",
			offerer.ConnectionState(), answerer.ConnectionState())
	}
}
