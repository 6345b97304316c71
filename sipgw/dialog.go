package sipgw

import (
	"context"
	"errors"

	"github.com/emiago/sipgo/sip"
)

// A call dialled in, after its INVITE is accepted (onInvite): its setup and answer, and
// the requests within its dialog.

// answer sets up c and answers its INVITE; it returns once the call is confirmed by
// the ACK, or has failed.
func (g *Gateway) answer(c *call, offer *description, timer sessionTimer) {
	dlg := c.inbound
	ctx, cancel := context.WithTimeout(dlg.Context(), setupTimeout)
	defer cancel()
	status, reason, err := c.open(ctx, offer)
	if err == nil {
		// Only a call set up is listed: Close and in-dialog requests never meet a call
		// that open is still writing. (INVITE retransmissions are the transaction's.)
		g.mu.Lock()
		if g.closed {
			status, reason, err = sip.StatusServiceUnavailable, "Service Unavailable", errors.New("gateway closing")
		} else {
			g.calls[c.id] = c
		}
		g.mu.Unlock()
	}
	if err != nil {
		outcome := outcomeRejected
		switch {
		case dlg.Context().Err() != nil:
			outcome, status = outcomeCancelled, 0
		case status >= 500:
			outcome = outcomeFailed
		}
		c.log.Info("sip call not set up", "status", status, "reason", reason, "err", err)
		g.m.Calls.WithLabelValues(outcome).Inc()
		if status != 0 {
			_ = dlg.Respond(status, reason, nil)
		}
		c.acked() // no 200, no ACK to wait for
		c.close("setup failed")
		c.release() // if a hang-up during the setup closed it first
		return
	}
	var sdpBody []byte
	if offer != nil {
		sdpBody = buildAnswer(offer, g.mediaIP, c.sdpID, c.sdpID, c.audio.local(), c.video.local())
	} else {
		sdpBody = buildOffer(g.mediaIP, c.sdpID, c.audio.offer(g.srtpRequired()), c.video.offer(g.srtpRequired()), false)
	}
	c.setLocalSDP(sdpBody)
	select {
	case <-c.done: // hung up during the setup (the meeting ended): no 200 then
		_ = dlg.Respond(sip.StatusServiceUnavailable, "Service Unavailable: the call ended", nil)
		c.acked()
		c.release()
		return
	default:
	}
	// WriteResponse waits for the ACK (retransmitting the 200 over UDP); a late offer's
	// answer arrives in it and onAck applies it first.
	res := sip.NewSDPResponseFromRequest(dlg.InviteRequest, sdpBody)
	res.AppendHeader(sip.NewHeader("Allow", allowed))
	for _, h := range timerHeaders(timer) {
		res.AppendHeader(h)
	}
	err = dlg.WriteResponse(res)
	if c.acked() {
		// Hung up between the 200 and its ACK (the meeting ended, say): the room has a
		// call, so it gets a BYE, now that the ACK came or the 200 timed out (RFC 3261
		// §15: a callee may not send BYE before either).
		c.byeAfterAck()
		return
	}
	if err != nil {
		c.log.Info("sip call not confirmed", "err", err)
		g.m.Calls.WithLabelValues(outcomeCancelled).Inc()
		if st := dlg.LoadState(); st == sip.DialogStateEstablished || st == sip.DialogStateConfirmed {
			c.byeAfterAck() // the 200 went out: RFC 3261 §13.3.1.4 ends such a session with a BYE
			return
		}
		c.close("no ACK")
		c.release()
		return
	}
	if c.remote() == nil {
		c.log.Info("sip call: the ACK carried no usable answer")
		g.m.Calls.WithLabelValues(outcomeRejected).Inc()
		c.hangup("no SDP answer in the ACK")
		return
	}
	g.m.Calls.WithLabelValues(outcomeAnswered).Inc()
	c.start()
	c.setTimer(timer)
}

// onAck confirms a call; for a late offer it carries the room's answer.
func (g *Gateway) onAck(req *sip.Request, tx sip.ServerTransaction) {
	g.m.request("ACK")
	c := g.lookup(req)
	if c == nil {
		return // the ACK of a refusal, taken by the transaction layer
	}
	if body := req.Body(); len(body) > 0 && c.remote() == nil {
		d, err := parseDescription(body, g.srtpRequired())
		if err == nil {
			err = c.fitRate(d)
		}
		if err == nil {
			err = c.setRemote(d, true)
		}
		if err != nil {
			c.log.Info("sip call: the ACK's answer is unusable", "err", err)
		}
	}
	if c.inbound == nil {
		return // a call we placed: its ACKs are ours
	}
	if err := c.inbound.ReadAck(req, tx); err != nil {
		c.log.Debug("sip ack", "err", err)
	}
}

// onBye ends a call at the room's request.
func (g *Gateway) onBye(req *sip.Request, tx sip.ServerTransaction) {
	g.m.request("BYE")
	c := g.inDialog(req, tx)
	if c == nil {
		return
	}
	if err := c.dlg.ReadBye(req, tx); err != nil {
		c.log.Info("sip bye", "err", err)
		g.respond(req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	c.log.Info("sip call ended by the room")
	c.close("bye")
}

// onInfo takes the room's picture_fast_update (RFC 5168): a keyframe request for the
// video it receives.
func (g *Gateway) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	g.m.request("INFO")
	c := g.inDialog(req, tx)
	if c == nil {
		return
	}
	if isFastUpdate(req.Body()) {
		c.keyframeFromRoom()
	}
	g.respond(req, tx, sip.StatusOK, "OK")
}

// reinvite answers a re-INVITE or an UPDATE. With an offer it is applied: hold
// (a=sendonly or a=inactive, or the old c=0.0.0.0) stops the media to the room and
// resume restarts it at a keyframe; a new address is latched again. Without one (a
// session refresh, or a late-offer re-INVITE) a re-INVITE gets the current description
// again, an UPDATE no body, and the call stays as it is. Either refreshes the session
// timer (timer.go).
func (g *Gateway) reinvite(req *sip.Request, tx sip.ServerTransaction) {
	c := g.inDialog(req, tx)
	if c == nil {
		return
	}
	c.mu.Lock()
	cur := c.session
	c.mu.Unlock()
	timer, refusal := g.negotiateTimer(req, cur)
	if refusal != nil {
		c.log.Info("sip session refresh refused", "status", refusal.status, "reason", refusal.reason)
		g.refuseTimer(req, tx, refusal)
		return
	}
	var body []byte
	if req.IsInvite() {
		body = c.localSDP()
	}
	if offer := req.Body(); len(offer) > 0 {
		// A call that has SRTP keeps it: a re-INVITE without keys is refused, not obeyed.
		d, err := parseDescription(offer, g.srtpRequired() || c.secure())
		if err == nil {
			body, err = c.update(d)
		}
		if err != nil {
			c.log.Info("sip re-invite refused", "err", err)
			g.respond(req, tx, sip.StatusNotAcceptableHere, "Not Acceptable Here")
			return
		}
	}
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	if body != nil {
		res = sip.NewSDPResponseFromRequest(req, body)
	}
	res.AppendHeader(&c.contact)
	for _, h := range timerHeaders(timer) {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		c.log.Info("sip re-invite", "method", req.Method, "err", err)
		return
	}
	c.setTimer(timer)
}
