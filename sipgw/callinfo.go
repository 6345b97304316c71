package sipgw

import "sort"

// CallInfo is a call in progress as the gateway sees it: what it negotiated and, for a
// room whose video could not be matched, why it is audio-only. It is the API view of a
// call (Gateway.CallInfos) and what the console's entry of the room shows.
type CallInfo struct {
	ID      string `json:"id"`
	Meeting string `json:"meeting"`
	Name    string `json:"name"`
	// Transport is the SIP transport: UDP, TCP or TLS.
	Transport string `json:"transport"`
	// AudioCodec and VideoCodec are the negotiated codecs (g722, pcmu, pcma, h264; none).
	AudioCodec string `json:"audio_codec"`
	VideoCodec string `json:"video_codec"`
	// Encryption is the media's protection: srtp or none.
	Encryption string `json:"encryption"`
	// VideoRefused is why the room's offered video was refused and the call joined
	// audio-only (codec, h264_mode0, srtp, transport; "" when its video is carried or it
	// offered none), and VideoRefusedText the same for a technician.
	VideoRefused     string `json:"video_refused,omitempty"`
	VideoRefusedText string `json:"video_refused_text,omitempty"`
}

// CallInfos lists the calls in progress, by Call-ID.
func (g *Gateway) CallInfos() []CallInfo {
	g.mu.Lock()
	calls := make([]*call, 0, len(g.calls))
	for _, c := range g.calls {
		calls = append(calls, c)
	}
	g.mu.Unlock()
	out := make([]CallInfo, 0, len(calls))
	for _, c := range calls {
		out = append(out, c.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// info is c's CallInfo.
func (c *call) info() CallInfo {
	d := c.remote()
	ci := CallInfo{ID: c.id, Meeting: c.meeting, Name: c.name, Transport: c.transport, AudioCodec: codecNone,
		VideoCodec: codecNone, Encryption: "none"}
	if d != nil {
		if d.Audio != nil {
			ci.AudioCodec = d.Audio.Codec
		}
		if d.Video != nil {
			ci.VideoCodec = d.Video.Codec
		}
		ci.VideoRefused = d.VideoRefused
		ci.VideoRefusedText = videoRefusedText[d.VideoRefused]
	}
	if c.audio != nil && c.video != nil && c.secure() {
		ci.Encryption = "srtp"
	}
	return ci
}
