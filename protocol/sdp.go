package protocol

import (
	"fmt"
	"strings"

	"github.com/pion/sdp/v3"
)

// SDP limits. A publisher offer carries an endpoint's own tracks (camera, microphone,
// screen, and a data channel at most); an answer to the bridge's subscriber offer has one
// m-section per stream the endpoint receives, which the floor keeps small.
const (
	// MaxOfferMedia is the most m-sections a publisher offer may have.
	MaxOfferMedia = 8
	// MaxAnswerMedia is the most m-sections an answer may have.
	MaxAnswerMedia = 64
	// maxSDPLines bounds the work of parsing one description.
	maxSDPLines = 2000
)

// SDPTrack is one track an SDP describes: its msid track id and media kind.
type SDPTrack struct {
	ID, Kind string
}

// ParseSDP parses a session description with pion/sdp after the size checks, and returns
// its tracks: the msid track id of every m-section, from "a=msid:" or, failing that, from
// "a=ssrc:N msid:" lines (which pion also reads). maxMedia bounds the m-sections.
func ParseSDP(s string, maxMedia int) ([]SDPTrack, error) {
	if err := checkSDP(s); err != nil {
		return nil, err
	}
	if n := strings.Count(s, "\n"); n > maxSDPLines {
		return nil, fmt.Errorf("%w: sdp has more than %d lines", errField, maxSDPLines)
	}
	if n := strings.Count(s, "\nm="); n > maxMedia {
		return nil, fmt.Errorf("%w: sdp has %d media sections, at most %d allowed", errField, n, maxMedia)
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(s); err != nil {
		return nil, fmt.Errorf("%w: %w: %w", errField, ErrBadSDP, err)
	}
	if len(d.MediaDescriptions) > maxMedia {
		return nil, fmt.Errorf("%w: sdp has %d media sections, at most %d allowed", errField, len(d.MediaDescriptions), maxMedia)
	}
	var out []SDPTrack
	for _, m := range d.MediaDescriptions {
		kind := m.MediaName.Media
		seen := map[string]bool{}
		add := func(id string) {
			if id != "" && !seen[id] {
				seen[id] = true
				out = append(out, SDPTrack{ID: id, Kind: kind})
			}
		}
		for _, a := range m.Attributes {
			switch a.Key {
			case "msid":
				if f := strings.Fields(a.Value); len(f) == 2 {
					add(f[1])
				}
			case "ssrc":
				// "N msid:stream track"
				if _, rest, ok := strings.Cut(a.Value, " "); ok && strings.HasPrefix(rest, "msid:") {
					if f := strings.Fields(rest[len("msid:"):]); len(f) == 2 {
						add(f[1])
					}
				}
			}
		}
	}
	return out, nil
}
