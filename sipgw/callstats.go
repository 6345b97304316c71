package sipgw

import (
	"strings"
	"time"

	"github.com/pion/rtcp"

	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/signaling"
)

// A call's state, its RTCP reports to the room, the figures of its link with the room
// (for the metrics and the monitor, signaling.AttachOptions.Link), and the simulcast
// layer the room is sent (h264params.go).

// legOf returns the stats, the SSRC the gateway sends with, and the kind of leg l.
func (c *call) legOf(l *leg) (*legStats, uint32, string) {
	if l == c.video {
		return &c.videoStats, c.videoSSRC, "video"
	}
	return &c.audioStats, c.audioSSRC, "audio"
}

// reportLoop sends the room RTCP reports on each negotiated leg every rtcpInterval until
// the call ends, and records the gateway's figures of what the room sends.
func (c *call) reportLoop() {
	tick := time.NewTicker(rtcpInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case now := <-tick.C:
			d := c.remote()
			if d == nil {
				continue
			}
			for _, s := range []struct {
				l *leg
				m *media
			}{{c.audio, d.Audio}, {c.video, d.Video}} {
				if s.m != nil {
					c.reportTo(s.l, now)
				}
			}
		}
	}
}

// reportTo sends the room l's report and observes what it says of the room's media.
func (c *call) reportTo(l *leg, now time.Time) {
	st, ssrc, kind := c.legOf(l)
	pkt := st.report(ssrc, now)
	var blocks []rtcp.ReceptionReport
	switch p := pkt.(type) {
	case *rtcp.SenderReport:
		blocks = p.Reports
	case *rtcp.ReceiverReport:
		blocks = p.Reports
	}
	if len(blocks) > 0 {
		f := st.figures()
		c.g.m.ReceivedJitter.WithLabelValues(kind).Observe(f.jitter)
		c.g.m.ReceivedLoss.WithLabelValues(kind).Observe(float64(blocks[0].FractionLost) / 256)
	}
	if b, err := pkt.Marshal(); err == nil {
		_ = l.sendRTCP(b)
	}
}

// setState moves the call to state, keeping cau_sip_calls_by_state. Caller holds c.mu.
func (c *call) setState(state string) {
	if c.state == state {
		return
	}
	if c.state == stateActive || c.state == stateHeld {
		c.g.m.States.WithLabelValues(c.state).Dec()
	}
	if state == stateActive || state == stateHeld {
		c.g.m.States.WithLabelValues(state).Inc()
	}
	c.state = state
}

// held reports whether the room put every stream it has on hold.
func held(d *description) bool {
	return d != nil && (d.Audio == nil || !d.Audio.RemoteRecvs) && (d.Video == nil || !d.Video.RemoteRecvs)
}

// capVideo sends the room the highest layer of the meeting's simulcast videos it decodes
// (layerFor), by capping the call's subscriptions at the bridge. Called when the room's
// description is known (start) and when a re-INVITE changes it.
func (c *call) capVideo(d *description) {
	if d == nil || d.Video == nil || c.ep == nil {
		return
	}
	layer := layerFor(d.Video.H264, cameraLayers)
	if old := c.videoLayer.Swap(int32(layer)); old == int32(layer) {
		return
	}
	c.ep.SetMaxVideoLayer(layer)
	caps := d.Video.H264
	c.log.Info("sip call: the room's video layer", "layer", layer, "profile_level_id", caps.answerProfileLevelID(),
		"max_fs", caps.frameLimit(), "max_mbps", caps.rateLimit(), "max_bitrate", caps.bitrateLimit())
}

// link is the room's link as the gateway measures it, for the monitor (signaling calls
// it with its locks held: it takes only the call's and the legs' own locks, which are
// never held while calling signaling).
func (c *call) link() (signaling.GatewayLink, bool) {
	c.mu.Lock()
	d, state := c.sdpRemote, c.state
	c.mu.Unlock()
	sip := &protocol.SIPCall{Transport: strings.ToLower(c.transport), Encryption: "none", State: state, AudioCodec: codecNone,
		VideoCodec: codecNone, VideoLayer: int(c.videoLayer.Load())}
	if state == "" {
		sip.State = stateConnecting
	}
	if c.audio != nil && c.video != nil && c.secure() {
		sip.Encryption = "srtp"
	}
	gl := signaling.GatewayLink{SIP: sip}
	if d == nil {
		return gl, false
	}
	sip.VideoRefused = d.VideoRefused
	now := time.Now()
	measured := false
	for _, s := range []struct {
		m  *media
		st *legStats
	}{{d.Audio, &c.audioStats}, {d.Video, &c.videoStats}} {
		if s.m == nil {
			continue
		}
		if s.m.Kind == "audio" {
			sip.AudioCodec = s.m.Codec
		} else {
			sip.VideoCodec = s.m.Codec
		}
		f := s.st.figures()
		measured = measured || f.recvPackets > 0 || f.sentPackets > 0
		addFigures(&gl.Up, f.recvPackets, f.recvBytes, f.lossTotal, f.jitter, 0, f.lastRecv, now)
		addFigures(&gl.Down, f.sentPackets, f.sentBytes, f.roomLoss, f.roomJitter, f.rtt, f.lastSent, now)
		gl.Up.BitrateBps += f.recvRate
		gl.Down.BitrateBps += f.sentRate
	}
	// The round trip is the path's: both directions carry it, as the bridge's do.
	gl.Up.RTTMs = gl.Down.RTTMs
	return gl, measured
}

// addFigures adds one stream's figures to a direction's: counts summed, loss, jitter and
// round trip the worst of the streams.
func addFigures(l *protocol.LinkFigures, packets, bytes uint64, loss, jitter, rtt float64, last, now time.Time) {
	if l.Streams == 0 {
		l.LastPacketAgeMs = -1
	}
	l.Streams++
	l.Packets += packets
	l.Bytes += bytes
	l.LossPct = max(l.LossPct, 100*loss)
	l.JitterMs = max(l.JitterMs, 1000*jitter)
	l.RTTMs = max(l.RTTMs, 1000*rtt)
	if !last.IsZero() {
		age := now.Sub(last).Milliseconds()
		if l.LastPacketAgeMs < 0 || age < l.LastPacketAgeMs {
			l.LastPacketAgeMs = age
		}
	}
}
