package loadtest

import "time"

// JoinSteps splits a join into the steps an endpoint goes through between the server's
// joined reply and its first media packet, in milliseconds: where a join storm's time
// goes (issue 11) on the tester's side of the wire.
type JoinSteps struct {
	// Offer is joined (or, for an endpoint that joined before any other publisher
	// published, that publication) → the first subscriber offer received.
	Offer Percentiles `json:"offer"`
	// Answer is the offer → its answer made (the client's SetRemoteDescription and
	// CreateAnswer).
	Answer Percentiles `json:"answer"`
	// ICE is the answer made → ICE connected (SetLocalDescription, the answer's way to
	// the bridge, the connectivity checks).
	ICE Percentiles `json:"ice"`
	// DTLS is ICE connected → the connection connected (the DTLS handshake).
	DTLS Percentiles `json:"dtls"`
	// Media is connected → the first media packet (the bridge forwards what it has:
	// audio at once, video from a keyframe).
	Media Percentiles `json:"media"`
}

// joinSteps computes the steps over the bots that got media.
func joinSteps(bots []*bot) JoinSteps {
	var offer, answer, ice, dtls, media []float64
	// A step whose end was marked before its start (callbacks on different goroutines:
	// the first packet can be read before pion reports the connection connected) took
	// no time.
	step := func(to *[]float64, a, b time.Time) {
		if !a.IsZero() && !b.IsZero() {
			*to = append(*to, ms(max(b.Sub(a), 0)))
		}
	}
	for _, b := range bots {
		b.mu.Lock()
		c, joinedAt := b.c, b.joinedAt
		b.mu.Unlock()
		first := b.firstMedia()
		if c == nil || first.IsZero() {
			continue
		}
		t := c.Timeline()
		from := joinedAt
		if p := firstPublication(bots, b); p.After(from) {
			from = p
		}
		step(&offer, from, t.Offer)
		step(&answer, t.Offer, t.Answer)
		step(&ice, t.Answer, t.ICEConnected)
		step(&dtls, t.ICEConnected, t.Connected)
		step(&media, t.Connected, first)
	}
	return JoinSteps{Offer: percentiles(offer), Answer: percentiles(answer), ICE: percentiles(ice),
		DTLS: percentiles(dtls), Media: percentiles(media)}
}

// firstPublication is when another bot than b first published (zero if none did).
func firstPublication(bots []*bot, b *bot) time.Time {
	var at time.Time
	for _, p := range bots {
		if p == b {
			continue
		}
		if pubs := p.pubList(); len(pubs) > 0 && (at.IsZero() || pubs[0].start.Before(at)) {
			at = pubs[0].start
		}
	}
	return at
}
