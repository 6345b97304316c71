package sipgw

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Session timers (RFC 4028): a call whose room asks for them (Session-Expires, or
// Supported: timer) is refreshed by one side every interval; the other side ends a call
// that stays unrefreshed, which is how a room that lost power or its network leaves the
// meeting without a BYE. The gateway takes the room's interval unless it is below
// Config.MinSE (422 with Min-SE), lets the room refresh when it supports timers, and
// otherwise refreshes itself, by UPDATE when the room allows it, else by re-INVITE
// with the unchanged session. Calls the gateway places do not offer timers.

// Defaults of Config.SessionExpires and Config.MinSE (RFC 4028 §4: 90 s is the least a
// Min-SE may be; 1800 s is the recommended interval).
const (
	DefaultSessionExpires = 30 * time.Minute
	DefaultMinSE          = 90 * time.Second
)

// sessionTimer is a call's RFC 4028 state; guarded by call.mu.
type sessionTimer struct {
	interval  time.Duration // 0: no session timer
	weRefresh bool
	expiresAt time.Time // the session ends unless refreshed by then
	timer     *time.Timer
}

// timerOffer is what a request (an INVITE, a refreshing re-INVITE or UPDATE) says of
// session timers.
type timerOffer struct {
	expires   time.Duration // its Session-Expires (0: none)
	refresher string        // "uac", "uas" or "" (its Session-Expires' refresher)
	minSE     time.Duration // its Min-SE (0: none)
	supported bool          // Supported: timer
}

// errBadTimerHeader is a Session-Expires or Min-SE that is not a number of seconds.
var errBadTimerHeader = errors.New("bad Session-Expires or Min-SE")

// headerValue is a header's value by its name or its compact form ("" when absent).
func headerValue(req *sip.Request, name, compact string) string {
	if h := req.GetHeader(name); h != nil {
		return h.Value()
	}
	if compact != "" {
		if h := req.GetHeader(compact); h != nil {
			return h.Value()
		}
	}
	return ""
}

// readTimerOffer reads req's session-timer headers.
func readTimerOffer(req *sip.Request) (timerOffer, error) {
	var o timerOffer
	seconds := func(v string) (time.Duration, error) {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 31)
		if err != nil || n == 0 {
			return 0, errBadTimerHeader
		}
		return time.Duration(n) * time.Second, nil
	}
	if v := headerValue(req, "Session-Expires", "x"); v != "" {
		num, params, _ := strings.Cut(v, ";")
		var err error
		if o.expires, err = seconds(num); err != nil {
			return o, err
		}
		for _, p := range strings.Split(params, ";") {
			k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(k, "refresher") {
				o.refresher = strings.ToLower(strings.TrimSpace(val))
			}
		}
	}
	if v := headerValue(req, "Min-SE", ""); v != "" {
		num, _, _ := strings.Cut(v, ";")
		var err error
		if o.minSE, err = seconds(num); err != nil {
			return o, err
		}
	}
	for _, h := range append(req.GetHeaders("Supported"), req.GetHeaders("k")...) {
		for _, opt := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(opt), "timer") {
				o.supported = true
			}
		}
	}
	return o, nil
}

// negotiateTimer decides a request's session timer: the interval and who refreshes,
// with cur the call's timer so far (zero for a new call). A refusal is a 422 (the
// interval is below Config.MinSE) or a 400.
func (g *Gateway) negotiateTimer(req *sip.Request, cur sessionTimer) (sessionTimer, *sipError) {
	o, err := readTimerOffer(req)
	if err != nil {
		return cur, &sipError{sip.StatusBadRequest, "Bad Request: " + err.Error()}
	}
	if o.expires > 0 && o.expires < g.cfg.MinSE {
		return cur, &sipError{422, "Session Interval Too Small"}
	}
	st := sessionTimer{interval: o.expires}
	switch {
	case o.expires > 0:
	case cur.interval > 0: // a refresh without the header keeps the session's timer as it is
		return sessionTimer{interval: cur.interval, weRefresh: cur.weRefresh}, nil
	case o.supported:
		st.interval = g.cfg.SessionExpires
	default:
		return sessionTimer{}, nil // the room knows nothing of timers: none
	}
	st.interval = max(st.interval, o.minSE, g.cfg.MinSE)
	switch o.refresher {
	case "uac": // the sender of req refreshes: the room
	case "uas":
		st.weRefresh = true
	default:
		// Unsaid: the room if it supports timers, else the gateway, which then needs
		// nothing of the room but to answer re-INVITEs (RFC 4028 §9).
		st.weRefresh = !o.supported
	}
	return st, nil
}

// timerHeaders are the session-timer headers of a 2xx to a request the room sent (the
// room is its UAC).
func timerHeaders(st sessionTimer) []sip.Header {
	hs := []sip.Header{sip.NewHeader("Supported", "timer")}
	if st.interval == 0 {
		return hs
	}
	refresher := "uac"
	if st.weRefresh {
		refresher = "uas"
	} else {
		hs = append(hs, sip.NewHeader("Require", "timer")) // RFC 4028 §9: the UAC must refresh
	}
	return append(hs, sip.NewHeader("Session-Expires", fmt.Sprintf("%d;refresher=%s", int(st.interval.Seconds()), refresher)))
}

// tooSmall is the 422 answer to req: it carries the least interval the gateway takes.
func (g *Gateway) tooSmall(req *sip.Request, tx sip.ServerTransaction) {
	g.respond(req, tx, 422, "Session Interval Too Small", sip.NewHeader("Min-SE", strconv.Itoa(int(g.cfg.MinSE.Seconds()))))
}

// refuseTimer answers req's timer refusal (422 or 400).
func (g *Gateway) refuseTimer(req *sip.Request, tx sip.ServerTransaction, se *sipError) {
	if se.status == 422 {
		g.tooSmall(req, tx)
		return
	}
	g.respond(req, tx, se.status, se.reason)
}

// setTimer takes st as the call's session timer from now (a new call answered, or a
// refresh) and arms it.
func (c *call) setTimer(st sessionTimer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.session.timer != nil {
		c.session.timer.Stop()
	}
	st.timer = nil
	if st.interval == 0 || c.closing() {
		c.session = st
		return
	}
	st.expiresAt = time.Now().Add(st.interval)
	c.session = st
	c.armTimerLocked()
}

// armTimerLocked sets the timer to its next event: the refresh at half the interval when
// the gateway refreshes, else the expiry, less min(32 s, interval/3) (RFC 4028 §10) so
// that a refresh in flight is not cut short. c.mu held.
func (c *call) armTimerLocked() {
	st := &c.session
	at := st.expiresAt.Add(-min(32*time.Second, st.interval/3))
	if st.weRefresh {
		if half := st.expiresAt.Add(-st.interval / 2); time.Until(half) > 0 {
			at = half
		}
	}
	st.timer = time.AfterFunc(time.Until(at), c.onTimer)
}

// onTimer runs when the session timer fires: it refreshes the session, or ends the call.
func (c *call) onTimer() {
	c.mu.Lock()
	st := c.session
	expired := !time.Now().Before(st.expiresAt.Add(-min(32*time.Second, st.interval/3)))
	c.mu.Unlock()
	if st.interval == 0 {
		return
	}
	if expired || !st.weRefresh {
		c.log.Info("sip call: the session timer expired without a refresh", "interval", st.interval)
		c.g.m.SessionExpired.Inc()
		c.hangup("session timer expired")
		return
	}
	c.refreshSession(st)
}

// refreshSession refreshes the call's session (the gateway is the refresher): UPDATE
// if the room allows it, else a re-INVITE with the unchanged session. A 408 or 481, or
// no answer, ends the call (RFC 4028 §10); any other failure leaves it to expire unless a
// later refresh succeeds.
func (c *call) refreshSession(st sessionTimer) {
	method := sip.INVITE
	if c.allows("UPDATE") {
		method = sip.UPDATE
	}
	req := sip.NewRequest(method, c.peer)
	req.AppendHeader(sip.NewHeader("Session-Expires", fmt.Sprintf("%d;refresher=uac", int(st.interval.Seconds()))))
	req.AppendHeader(sip.NewHeader("Supported", "timer"))
	if method == sip.INVITE {
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(c.localSDP())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 32*time.Second)
	defer cancel()
	res, err := c.dlg.Do(ctx, req)
	if err == nil && method == sip.INVITE && res.IsSuccess() {
		ack := sip.NewRequest(sip.ACK, c.peer)
		ack.AppendHeader(&sip.CSeqHeader{SeqNo: req.CSeq().SeqNo, MethodName: sip.ACK})
		err = c.dlg.WriteRequest(ack)
	}
	switch {
	case err != nil || res.StatusCode == sip.StatusRequestTimeout || res.StatusCode == sip.StatusCallTransactionDoesNotExists:
		reason := "no answer"
		if err == nil {
			reason = strconv.Itoa(res.StatusCode)
		}
		c.log.Info("sip call: the session refresh failed; hanging up", "method", method, "reason", reason, "err", err)
		c.g.m.SessionExpired.Inc()
		c.hangup("session refresh failed")
		return
	case !res.IsSuccess():
		c.log.Info("sip call: the session refresh was refused", "method", method, "status", res.StatusCode)
		c.mu.Lock()
		if !c.closing() {
			c.session.weRefresh = false // what is left is the expiry
			c.armTimerLocked()
		}
		c.mu.Unlock()
		return
	}
	c.g.m.SessionRefreshes.Inc()
	// The room's 2xx may change the interval (upward) or hand the refreshing over.
	next := st
	if v := res.GetHeader("Session-Expires"); v != nil {
		num, params, _ := strings.Cut(v.Value(), ";")
		if n, err := strconv.Atoi(strings.TrimSpace(num)); err == nil && n > 0 {
			next.interval = max(time.Duration(n)*time.Second, c.g.cfg.MinSE)
		}
		next.weRefresh = !strings.Contains(strings.ToLower(params), "refresher=uas")
	}
	c.setTimer(next)
}

// allows reports whether the room's INVITE listed method in its Allow header.
func (c *call) allows(method sip.RequestMethod) bool {
	for _, m := range strings.Split(c.peerAllow, ",") {
		if strings.EqualFold(strings.TrimSpace(m), string(method)) {
			return true
		}
	}
	return false
}

// closing reports whether the call is closed or closing. c.mu held or not.
func (c *call) closing() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stopTimer stops the session timer (the call's close).
func (c *call) stopTimer() {
	c.mu.Lock()
	if c.session.timer != nil {
		c.session.timer.Stop()
	}
	c.session = sessionTimer{}
	c.mu.Unlock()
}
