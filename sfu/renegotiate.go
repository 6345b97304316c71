package sfu

// The subscriber connection's renegotiation: changes batched into one offer, the offer
// sent, its answer awaited.

import (
	"time"

	"github.com/pion/webrtc/v4"
)

// subscriberBatch lets several track changes (a participant's audio and video arrive
// together) share one renegotiation: the offer goes out once the subscriber connection
// has seen no change for subscriberBatch, and at the latest subscriberBatchMax after the
// first change, so that a join storm's stream of changes (each join's tracks added to
// whoever receives them, on a loaded machine slower than the window) makes one offer per
// subscriber per window rather than one per join.
const (
	subscriberBatch    = 20 * time.Millisecond
	subscriberBatchMax = 100 * time.Millisecond
)

// subscriberRemovalWait is how long a renegotiation that only removes the tracks of
// publishers that left waits before it is offered (any other change arriving meanwhile
// sends it at once, with that change). Nothing waits for such an offer: the tracks stopped
// forwarding when they ended, and the endpoint learns from signaling that the publisher
// left (a roster message: the page drops the tile); the offer only retires m-sections.
// When a meeting ends its publishers usually leave among the first, and every other
// endpoint, about to leave too, was offered its removal at once: 50-330 offers per
// 258-endpoint meeting end in sfu/bench-storm.sh (issue 11), each a CreateOffer here and a
// CreateAnswer at the endpoint, made while the next meeting's endpoints join. Held for this
// long, an endpoint that leaves meanwhile is never offered it. "Left" is the publisher's
// Peer closed (signaling closes it on the endpoint's leave message, before the endpoint
// closes its connections); tracks that end while it is open are offered promptly. A track unpublished by a
// publisher that stays (a screen share stopped) or unsubscribed is offered promptly: the
// page clears the picture on that offer.
const subscriberRemovalWait = 2 * time.Second

// subscriberAnswerWait is how long a subscriber offer waits for its answer before it is
// rolled back or, where pion cannot roll back, sent again (offerTimedOut).
const subscriberAnswerWait = 10 * time.Second

// scheduleOffer starts a subscriber renegotiation soon, or marks one as needed if an offer
// is already out (one offer in flight at a time). prompt is false for a change that only
// removes a track whose publisher left: alone, it waits removalWait (subscriberRemovalWait).
func (p *Peer) scheduleOffer(prompt bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if p.offerOut {
		if p.offerDue == nil { // an offer awaits its answer: HandleAnswer offers again
			p.renegotiate = true
			p.renegotiatePrompt = p.renegotiatePrompt || prompt
			return
		}
		// A batch still waiting to be offered takes the change. Stop fails when sendOffer
		// has fired, and its CreateOffer, after this change, carries it.
		switch {
		case !prompt && !p.batchPrompt:
			// A removal joins a batch of removals, which keeps its deadline.
		case !p.batchPrompt:
			// The first prompt change to a batch of removals: offered as such changes are.
			if p.offerDue.Stop() {
				p.batchPrompt, p.batchFrom = true, time.Now()
				p.offerDue.Reset(p.batchQuiet)
			}
		case time.Since(p.batchFrom) < p.batchMax-p.batchQuiet && p.offerDue.Stop():
			// The batch waits for quiet again, up to its limit.
			p.offerDue.Reset(p.batchQuiet)
		}
		return
	}
	p.offerOut = true
	p.batchPrompt = prompt
	p.batchFrom = time.Now()
	wait := p.batchQuiet
	if !prompt {
		wait = p.removalWait
	}
	p.offerDue = time.AfterFunc(wait, p.sendOffer)
}

func (p *Peer) sendOffer() {
	p.mu.Lock()
	p.offerDue = nil
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.offered = true
	p.mu.Unlock()
	p.subNegotiation.Lock()
	offer, err := p.sub.CreateOffer(nil)
	gathered := webrtc.GatheringCompletePromise(p.sub)
	if err == nil {
		err = p.sub.SetLocalDescription(offer)
	}
	p.subNegotiation.Unlock()
	if err != nil {
		p.mu.Lock()
		closed := p.closed
		p.mu.Unlock()
		if !closed { // a peer closing while an offer was due is normal: not an error
			p.log.Error("subscriber offer", "err", err)
		}
		p.mu.Lock()
		p.offerOut = false
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	// An endpoint that never answers must not freeze its subscriptions forever: after
	// a while, roll back and offer again with whatever changed.
	p.offerTimer = time.AfterFunc(subscriberAnswerWait, p.offerTimedOut)
	p.mu.Unlock()
	waitGathering(gathered)
	if p.params.OnSubscriberOffer != nil {
		p.params.OnSubscriberOffer(p.sub.LocalDescription().SDP)
	}
}

// OfferNow makes the subscriber connection's first offer at once if it is due, instead of
// when its batching window closes. Signaling calls it once it has subscribed a joining
// endpoint to everything its meeting has, in one op: nothing more is coming for the window
// to batch, and the joiner's first media need not wait for it (issue 11: subscriberBatch,
// 20 ms, was the p50 of every join's joined → offer step in sfu/bench-storm.sh). Later
// offers, and a first offer that is not due yet, keep the window.
func (p *Peer) OfferNow() {
	p.mu.Lock()
	now := !p.closed && !p.offered && p.offerDue != nil && p.batchPrompt && p.offerDue.Stop()
	p.mu.Unlock()
	if now {
		// offerDue stays set (stopped) until sendOffer takes mu: a change meanwhile finds
		// it, fails to Stop it, and is carried by sendOffer's CreateOffer, as when the
		// timer fires.
		go p.sendOffer()
	}
}

// waitGathering waits briefly for ICE gathering, so the description the endpoint gets
// already carries the bridge's candidates. With the UDP mux they are host candidates,
// known at once. Without them an endpoint whose connectivity check arrives first waits
// a second (pion's peer-reflexive acceptance delay) before using the path: the joins'
// one-second tail the load tester measured. Candidates still trickle as well.
func waitGathering(done <-chan struct{}) {
	select {
	case <-done:
	case <-time.After(500 * time.Millisecond):
	}
}

func (p *Peer) offerTimedOut() {
	p.subNegotiation.Lock()
	p.mu.Lock()
	if p.closed || !p.offerOut {
		p.mu.Unlock()
		p.subNegotiation.Unlock()
		return
	}
	p.mu.Unlock()
	if err := p.sub.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback}); err != nil {
		// pion cannot roll a local offer back: the connection stays in have-local-offer,
		// where only the endpoint's answer moves it, and every new offer would fail. The
		// offer may have been lost on the way (an endpoint that was moved to this bridge
		// received it before its new connection existed; a relay link's negotiation timed
		// out under load): waiting for an answer to it froze the subscriptions for good.
		// So send the same offer again (answering it twice is harmless: the second answer
		// finds the connection stable and is refused), keep waiting, and offer what
		// changed meanwhile once the answer comes.
		p.mu.Lock()
		p.renegotiate, p.renegotiatePrompt = true, true
		p.offerTimer = time.AfterFunc(subscriberAnswerWait, p.offerTimedOut)
		p.mu.Unlock()
		local := p.sub.PendingLocalDescription()
		p.subNegotiation.Unlock()
		p.log.Warn("subscriber answer late; offering the same again", "err", err)
		if local != nil && p.params.OnSubscriberOffer != nil {
			p.params.OnSubscriberOffer(local.SDP)
		}
		return
	}
	p.subNegotiation.Unlock()
	p.mu.Lock()
	p.offerOut = false
	p.renegotiate, p.renegotiatePrompt = false, false
	p.mu.Unlock()
	p.log.Warn("subscriber answer timed out; offering again")
	p.scheduleOffer(true)
}
