package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Field limits. They bound memory per message and keep names printable on a kiosk screen.
const (
	maxTokenBytes     = 4096
	maxNameRunes      = 64
	maxSDPBytes       = 48 << 10
	maxTracksPerOffer = 16
	maxTrackIDBytes   = 128
	maxCandidateBytes = 512
)

var errField = errors.New("invalid field")

// ErrBadSDP marks a description that looks like SDP (v=0, within the size limits) but does
// not parse, so that signaling answers it with CodeBadSDP rather than CodeBadMessage.
var ErrBadSDP = errors.New("bad sdp")

// Validate checks a join.
func (j *Join) Validate() error {
	if j.Token == "" {
		return fmt.Errorf("%w: token is required", errField)
	}
	if len(j.Token) > maxTokenBytes {
		return fmt.Errorf("%w: token longer than %d bytes", errField, maxTokenBytes)
	}
	if len([]rune(j.Name)) > maxNameRunes {
		return fmt.Errorf("%w: name longer than %d characters", errField, maxNameRunes)
	}
	if len(j.Resume) > MaxResumeLen {
		return fmt.Errorf("%w: resume longer than %d bytes", errField, MaxResumeLen)
	}
	return nil
}

// Validate checks an offer.
func (o *Offer) Validate() error {
	if _, err := ParseSDP(o.SDP, MaxOfferMedia); err != nil {
		return err
	}
	if len(o.Tracks) > maxTracksPerOffer {
		return fmt.Errorf("%w: more than %d tracks", errField, maxTracksPerOffer)
	}
	for _, t := range o.Tracks {
		if t.ID == "" || len(t.ID) > maxTrackIDBytes {
			return fmt.Errorf("%w: track id must be 1..%d bytes", errField, maxTrackIDBytes)
		}
		if !t.Source.Valid() {
			return fmt.Errorf("%w: unknown track source %q", errField, t.Source)
		}
	}
	return nil
}

// DecodeBridgeOffer reads the bridge's offer for an endpoint's subscriber connection. It
// has an m-section per stream the endpoint is sent, so it is bounded as the answer that
// mirrors it (MaxAnswerMedia), not as a publisher's offer (Offer.Validate, MaxOfferMedia):
// an endpoint in a meeting of five publishers must not refuse it.
func DecodeBridgeOffer(env Envelope) (Offer, error) {
	var o Offer
	if err := json.Unmarshal(env.Data, &o); err != nil {
		return o, fmt.Errorf("bridge offer: %w", err)
	}
	if _, err := ParseSDP(o.SDP, MaxAnswerMedia); err != nil {
		return o, fmt.Errorf("bridge offer: %w", err)
	}
	return o, nil
}

// Validate checks an answer.
func (a *Answer) Validate() error {
	_, err := ParseSDP(a.SDP, MaxAnswerMedia)
	return err
}

// Validate checks a candidate.
func (c *Candidate) Validate() error {
	if c.Target != TargetPublisher && c.Target != TargetSubscriber {
		return fmt.Errorf("%w: target must be %q or %q", errField, TargetPublisher, TargetSubscriber)
	}
	if len(c.Candidate.Candidate) > maxCandidateBytes {
		return fmt.Errorf("%w: candidate longer than %d bytes", errField, maxCandidateBytes)
	}
	return nil
}

// Validate checks a mute.
func (m *Mute) Validate() error {
	if !m.Source.Valid() {
		return fmt.Errorf("%w: unknown source %q", errField, m.Source)
	}
	return nil
}

// checkSDP rejects what is obviously not a session description before pion sees it.
func checkSDP(sdp string) error {
	if sdp == "" {
		return fmt.Errorf("%w: sdp is required", errField)
	}
	if len(sdp) > maxSDPBytes {
		return fmt.Errorf("%w: sdp longer than %d bytes", errField, maxSDPBytes)
	}
	if !strings.HasPrefix(sdp, "v=0") {
		return fmt.Errorf("%w: sdp must start with v=0", errField)
	}
	return nil
}
