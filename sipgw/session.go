package sipgw

import (
	"fmt"
	"sync/atomic"
	"time"
)

// The session descriptions of a call: the gateway's latest, the room's, and what a
// re-INVITE or UPDATE changes (direction, address, codec, SRTP keys).

func (c *call) setLocalSDP(b []byte) {
	c.mu.Lock()
	c.sdpLocal = b
	c.mu.Unlock()
}

func (c *call) localSDP() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sdpLocal
}

// update applies a re-INVITE's offer and returns the answer: each stream's direction
// and codec at once, its address only if it changed (a latched address through a NAT
// otherwise stays), its SRTP keys if they changed. The room's video restarts at a
// keyframe when it comes off hold.
func (c *call) update(d *description) ([]byte, error) {
	if err := c.fitRate(d); err != nil {
		return nil, err
	}
	for _, s := range []struct {
		l *leg
		m *media
	}{{c.audio, d.Audio}, {c.video, d.Video}} {
		if s.m != nil {
			if err := s.l.setKeys(s.m.Key, false); err != nil {
				return nil, err
			}
		}
	}
	c.mu.Lock()
	old := c.sdpRemote
	c.sdpRemote = d
	c.sdpVersion++
	version := c.sdpVersion + c.sdpID
	c.mu.Unlock()
	var oldAudio, oldVideo *media
	if old != nil {
		oldAudio, oldVideo = old.Audio, old.Video
	}
	c.updateMedia(c.audio, &c.roomAudio, oldAudio, d.Audio)
	wasHeld := oldVideo == nil || !oldVideo.RemoteRecvs
	c.updateMedia(c.video, &c.roomVideo, oldVideo, d.Video)
	if d.Video != nil && d.Video.RemoteRecvs && wasHeld {
		c.resumeVideo()
	}
	held := held(d)
	c.mu.Lock()
	if c.answered {
		if held {
			c.setState(stateHeld)
		} else {
			c.setState(stateActive)
		}
	}
	c.mu.Unlock()
	c.capVideo(d)
	c.log.Info("sip re-invite", "held", held)
	body := buildAnswer(d, c.g.mediaIP, c.sdpID, version, c.audio.local(), c.video.local())
	c.setLocalSDP(body)
	return body, nil
}

// secure reports whether the call's media are SRTP: a re-INVITE may not take that away.
func (c *call) secure() bool {
	return c.audio.crypto.Load() != nil || c.video.crypto.Load() != nil
}

// updateMedia applies one stream of a re-INVITE (see update).
func (c *call) updateMedia(l *leg, cur *atomic.Pointer[media], old, m *media) {
	if m == nil {
		return
	}
	switch {
	case m.Addr.Addr().IsUnspecified(): // RFC 2543 hold: c=0.0.0.0
		m.RemoteRecvs = false
	case old == nil || m.Addr != old.Addr || m.RTCP != old.RTCP:
		l.relatch(m)
	}
	cur.Store(m)
}

// resumeVideo restarts the room's video at the next keyframe of what it is sent.
func (c *call) resumeVideo() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.fwdVideo.Load(); t != nil && c.nextVideo.Load() == nil {
		c.fwdVideo.Store(nil)
		c.nextVideo.Store(t)
		now := time.Now().UnixNano()
		c.switchAt.Store(now)
		c.switchAsked.Store(now)
		go c.askKeyframe(t)
	}
}

// setRemote takes the room's description (an offer, or with isAnswer the answer to the
// gateway's offer) and points the legs at it, with their SRTP keys.
func (c *call) setRemote(d *description, isAnswer bool) error {
	if d.Audio != nil {
		if err := c.audio.setKeys(d.Audio.Key, isAnswer); err != nil {
			return err
		}
	}
	if d.Video != nil {
		if err := c.video.setKeys(d.Video.Key, isAnswer); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.sdpRemote = d
	c.mu.Unlock()
	if d.Audio != nil {
		c.audio.setRemote(d.Audio)
		c.roomAudio.Store(d.Audio)
	}
	if d.Video != nil {
		c.video.setRemote(d.Video)
		c.roomVideo.Store(d.Video)
	}
	return nil
}

// setRate fixes the call's audio rate from the room's description (its offer, or its
// answer to ours), before the call joins the meeting.
func (c *call) setRate(d *description) {
	if d.Audio != nil {
		c.rate = codecRate(d.Audio.Codec)
		c.mix.frame = c.rate / 50
	}
}

// fitRate keeps a later description (a re-INVITE's offer, a late offer's answer) at the
// call's audio rate: a G.711 call offered G.722 and G.711 stays G.711; one that would
// change rate is refused.
func (c *call) fitRate(d *description) error {
	a := d.Audio
	if a == nil || codecRate(a.Codec) == c.rate {
		return nil
	}
	if c.rate == g711Rate && a.NarrowCodec != "" {
		a.PT, a.Codec = a.NarrowPT, a.NarrowCodec
		return nil
	}
	return fmt.Errorf("the audio codec %s would change the call's audio rate (%d Hz)", a.Codec, c.rate)
}

func (c *call) remote() *description {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sdpRemote
}
