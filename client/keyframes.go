package client

import (
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// ReadKeyframeRequests reads s's RTCP until the sender closes and calls onRequest for
// every picture loss indication or full intra request: what a sending endpoint needs
// to answer with a keyframe.
func ReadKeyframeRequests(s *webrtc.RTPSender, onRequest func()) {
	readKeyframeRequests(func() ([]rtcp.Packet, error) { p, _, err := s.ReadRTCP(); return p, err }, onRequest)
}

// ReadSimulcastKeyframeRequests is ReadKeyframeRequests for one simulcast layer (rid) of s.
func ReadSimulcastKeyframeRequests(s *webrtc.RTPSender, rid string, onRequest func()) {
	readKeyframeRequests(func() ([]rtcp.Packet, error) { p, _, err := s.ReadSimulcastRTCP(rid); return p, err }, onRequest)
}

func readKeyframeRequests(read func() ([]rtcp.Packet, error), onRequest func()) {
	for {
		pkts, err := read()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				onRequest()
			}
		}
	}
}
