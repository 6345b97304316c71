// Package testpeer builds the pion stacks the tests' endpoints use: a browser-like API
// (default codecs and interceptors, IPv4 UDP) on loopback or on a socket a test gives.
// It depends on pion only, so any package's tests may use it, sfu's own included.
package testpeer

import (
	"testing"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// API builds a browser-like pion API: me's codecs (nil: the default codecs), the
// interceptors already in ir (nil: none) and then pion's default ones, IPv4 UDP
// candidates, and whatever configure (may be nil) sets on the setting engine after that.
func API(t testing.TB, me *webrtc.MediaEngine, ir *interceptor.Registry, configure func(*webrtc.SettingEngine)) *webrtc.API {
	t.Helper()
	if me == nil {
		me = &webrtc.MediaEngine{}
		if err := me.RegisterDefaultCodecs(); err != nil {
			t.Fatal(err)
		}
	}
	if ir == nil {
		ir = &interceptor.Registry{}
	}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	// No mDNS: nobody here resolves .local names, and each peer connection would open
	// multicast sockets and a reader goroutine for it (leaked past Close on a loaded box).
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	if configure != nil {
		configure(&se)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// Loopback makes an API gather loopback candidates only, as the tests' endpoints and
// bridges do: a configure function for API.
func Loopback(se *webrtc.SettingEngine) {
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
}

// Offer sets pc's offer as its local description and returns it once ICE gathering is
// complete: the SDP carries every candidate, for peers that do not trickle.
func Offer(t testing.TB, pc *webrtc.PeerConnection) string {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	return gathered(t, pc, offer, err)
}

// Answer is Offer's counterpart, once pc has the remote offer.
func Answer(t testing.TB, pc *webrtc.PeerConnection) string {
	t.Helper()
	answer, err := pc.CreateAnswer(nil)
	return gathered(t, pc, answer, err)
}

// gathered sets d (created with err) as pc's local description and waits for gathering.
func gathered(t testing.TB, pc *webrtc.PeerConnection, d webrtc.SessionDescription, err error) string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(d); err != nil {
		t.Fatal(err)
	}
	<-done
	return pc.LocalDescription().SDP
}
