package protocol

// SIPCall describes an endpoint that is a room codec's SIP call through the gateway, for
// the console: how the call is carried and what it negotiated.
type SIPCall struct {
	// Transport is the SIP transport: "udp", "tcp" or "tls".
	Transport string `json:"transport"`
	// Encryption is the media's protection: "srtp" or "none".
	Encryption string `json:"encryption"`
	// State is the call's state: "connecting", "active", "held" (the room put it on
	// hold) or "ended".
	State string `json:"state"`
	// AudioCodec and VideoCodec are the negotiated codecs ("pcmu", "pcma", "h264"),
	// "none" for a stream the call does not carry.
	AudioCodec string `json:"audio_codec"`
	VideoCodec string `json:"video_codec"`
	// VideoLayer is the highest simulcast layer the room decodes (0 low … 2 top), from
	// its H.264 parameters; -1 without video.
	VideoLayer int `json:"video_layer"`
	// VideoRefused says why the room's offered video was refused and the call is
	// audio-only: "codec", "h264_mode0", "srtp" or "transport"; absent when its video is
	// carried or it offered none.
	VideoRefused string `json:"video_refused,omitempty"`
}
