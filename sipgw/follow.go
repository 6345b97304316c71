package sipgw

import (
	"slices"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/internal/rtpvideo"
	"github.com/cau-project/cau/protocol"
)

// Which of the meeting's videos the room is sent. A room shows one picture, so the
// gateway follows the meeting as an MCU's "voice switched" layout does:
//   - in training and directed mode, the floor holder's camera (the latest grant with
//     its camera on), else the chair site's;
//   - otherwise, and when that site sends no video the room can decode, the dominant
//     speaker's camera (mix.go elects it from the voices the room hears);
//   - failing both, the video the room already has, else the oldest one.
//
// A switch waits for the new source's next keyframe (asked for by PLI at once, and again
// every keyframeRetry): until then the room keeps the old picture, so it never decodes
// P-frames that reference pictures it does not have.

// keyframeRetry is how long a switch waits for a keyframe before asking again (a PLI
// lost on the way, or a publisher that rate-limits its keyframes).
const keyframeRetry = 500 * time.Millisecond

// Floor modes (rooms.Mode on the wire).
const modeDiscussion = "discussion"

// following is what a call knows of the meeting to choose the room's video. Its fields
// are guarded by call.mu; fwd and next, read per packet, are atomics in call.
type following struct {
	floor *protocol.FloorState
	// parts are the other participants, by id; siteOf maps the stream id of each one's
	// camera (and microphone: they share one stream) to its site.
	parts  map[string]protocol.Participant
	siteOf map[string]string
	// dominant is the stream id of the dominant speaker among the voices the room hears.
	dominant string
	// videos are the live video tracks the bridge sends the call, in arrival order.
	videos []*webrtc.TrackRemote
}

// setParticipant records p (joined or updated). Caller holds c.mu.
func (f *following) setParticipant(p protocol.Participant) {
	f.dropParticipant(p.ID)
	f.parts[p.ID] = p
	if s := p.Streams[protocol.SourceCamera]; s != "" {
		f.siteOf[s] = p.Site
	}
	if s := p.Streams[protocol.SourceMicrophone]; s != "" {
		f.siteOf[s] = p.Site
	}
}

// dropParticipant forgets participant id. Caller holds c.mu.
func (f *following) dropParticipant(id string) {
	old, ok := f.parts[id]
	if !ok {
		return
	}
	for _, s := range old.Streams {
		delete(f.siteOf, s)
	}
	delete(f.parts, id)
}

// siteVideo is the first live video the room can decode from a camera of site.
func (f *following) siteVideo(site string) *webrtc.TrackRemote {
	for _, t := range f.videos {
		if s, ok := f.siteOf[t.StreamID()]; ok && s == site && forwardable(t) {
			return t
		}
	}
	return nil
}

// streamVideo is the live video of stream the room can decode.
func (f *following) streamVideo(stream string) *webrtc.TrackRemote {
	if stream == "" {
		return nil
	}
	for _, t := range f.videos {
		if t.StreamID() == stream && forwardable(t) {
			return t
		}
	}
	return nil
}

// want is the video the room should see now, cur the one it sees.
func (f *following) want(cur *webrtc.TrackRemote) *webrtc.TrackRemote {
	if fl := f.floor; fl != nil && fl.Mode != modeDiscussion && fl.Mode != "" {
		for _, g := range slices.Backward(fl.Speakers) {
			if g.Camera {
				if t := f.siteVideo(g.Site); t != nil {
					return t
				}
			}
		}
		if t := f.siteVideo(fl.ChairSite); t != nil {
			return t
		}
	}
	if t := f.streamVideo(f.dominant); t != nil {
		return t
	}
	if cur != nil && slices.Contains(f.videos, cur) {
		return cur
	}
	for _, t := range f.videos {
		if forwardable(t) {
			return t
		}
	}
	return nil
}

// reselect brings the room's video in line with the meeting: a change of source is
// armed (next) and waits for the new source's keyframe, which is asked for now. Caller
// holds c.mu.
func (c *call) reselect() {
	cur := c.fwdVideo.Load()
	want := c.follow.want(cur)
	switch {
	case want == cur:
		c.nextVideo.Store(nil)
	case want == nil:
		c.fwdVideo.Store(nil)
		c.nextVideo.Store(nil)
	case c.nextVideo.Load() != want:
		c.nextVideo.Store(want)
		now := time.Now().UnixNano()
		c.switchAt.Store(now)
		c.switchAsked.Store(now)
		go c.askKeyframe(want)
	}
}

// askKeyframe asks the bridge for a keyframe of t (a PLI on the subscriber connection).
func (c *call) askKeyframe(t *webrtc.TrackRemote) {
	c.g.m.KeyframeRequests.WithLabelValues("from_room").Inc()
	_ = c.sub.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(t.SSRC())}})
}

// forwarding reports whether the packet pkt of video t goes to the room, switching to t
// when t is the armed source and pkt starts a keyframe. Called per packet by t's reader.
func (c *call) forwarding(t *webrtc.TrackRemote, pkt *rtp.Packet) bool {
	if c.nextVideo.Load() == t {
		if rtpvideo.H264KeyframeStart(pkt.Payload) { // SPS or IDR: the room decodes from here
			c.switchTo(t)
		} else if now := time.Now().UnixNano(); now-c.switchAsked.Load() > int64(keyframeRetry) {
			c.switchAsked.Store(now)
			go c.askKeyframe(t)
		}
	}
	return c.fwdVideo.Load() == t
}

// switchTo makes t the room's video, if it is still the armed source.
func (c *call) switchTo(t *webrtc.TrackRemote) {
	c.mu.Lock()
	if c.nextVideo.Load() != t {
		c.mu.Unlock()
		return
	}
	c.nextVideo.Store(nil)
	c.fwdVideo.Store(t)
	site := c.follow.siteOf[t.StreamID()]
	c.mu.Unlock()
	took := time.Duration(time.Now().UnixNano() - c.switchAt.Load())
	c.g.m.VideoSwitch.Observe(took.Seconds())
	c.log.Info("sip call: the room's video switched", "stream", t.StreamID(), "site", site, "took", took)
}

// onMeetingEvent keeps the call's view of the meeting (participants, floor) for the
// video selection; other events are the connections' (attachrtc).
func (c *call) onMeetingEvent(env protocol.Envelope) bool {
	switch env.Kind {
	case protocol.KindRoster:
		var r protocol.Roster
		if protocol.DecodeData(env, &r) != nil {
			return true
		}
		c.mu.Lock()
		for _, p := range r.Participants {
			c.follow.setParticipant(p)
		}
		for _, id := range r.Left {
			c.follow.dropParticipant(id)
		}
		c.reselect()
		c.mu.Unlock()
	case protocol.KindFloor:
		var f protocol.FloorState
		if protocol.DecodeData(env, &f) != nil {
			return true
		}
		c.mu.Lock()
		if c.follow.floor == nil || f.Version >= c.follow.floor.Version {
			c.follow.floor = &f
			c.reselect()
		}
		c.mu.Unlock()
	default:
		return false
	}
	return true
}

// joined takes the meeting as the join's reply describes it.
func (c *call) joined(j protocol.Joined) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range j.Participants {
		if p.ID != j.Self.ID {
			c.follow.setParticipant(p)
		}
	}
	c.follow.floor = j.Floor
}

// setDominant records the dominant speaker's stream (from the mixer).
func (c *call) setDominant(stream string) {
	c.mu.Lock()
	if c.follow.dominant != stream {
		c.follow.dominant = stream
		c.reselect()
	}
	c.mu.Unlock()
}

// addVideo and removeVideo track the live video tracks (onTrack).
func (c *call) addVideo(t *webrtc.TrackRemote) {
	c.mu.Lock()
	c.follow.videos = append(c.follow.videos, t)
	c.reselect()
	c.mu.Unlock()
}

func (c *call) removeVideo(t *webrtc.TrackRemote) {
	c.mu.Lock()
	if i := slices.Index(c.follow.videos, t); i >= 0 {
		c.follow.videos = slices.Delete(c.follow.videos, i, i+1)
	}
	if c.fwdVideo.Load() == t {
		c.fwdVideo.Store(nil)
	}
	if c.nextVideo.Load() == t {
		c.nextVideo.Store(nil)
	}
	c.reselect()
	c.mu.Unlock()
}
