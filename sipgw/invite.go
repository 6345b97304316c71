package sipgw

import (
	"errors"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// A new call dialled in: what its INVITE must carry, and who may place it (onInvite);
// dialog.go answers it.

// meetingID is what a Request-URI user part may be: the ids Cầu gives meetings.
var meetingID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// sipError is a refusal with its SIP status.
type sipError struct {
	status int
	reason string
}

func (e *sipError) Error() string { return strconv.Itoa(e.status) + " " + e.reason }

// checkInvite reads what an INVITE must carry before a call is set up: the meeting its
// Request-URI names and, for an early offer, an SDP the gateway can answer (with SDES
// keys, under needSRTP). It does not touch the network (the fuzz target drives it).
func checkInvite(req *sip.Request, needSRTP bool) (meeting string, offer *description, err error) {
	if req.Contact() == nil || req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil {
		return "", nil, &sipError{sip.StatusBadRequest, "Missing Contact, From, To, Call-ID or CSeq"}
	}
	meeting = req.Recipient.User
	if !meetingID.MatchString(meeting) {
		return "", nil, &sipError{sip.StatusNotFound, "No such meeting (dial sip:<meeting>@host)"}
	}
	body := req.Body()
	if len(body) == 0 {
		return meeting, nil, nil // late offer
	}
	if ct := req.ContentType(); ct == nil || ct.Value() != "application/sdp" {
		return "", nil, &sipError{sip.StatusUnsupportedMediaType, "Only application/sdp bodies"}
	}
	offer, err = parseDescription(body, needSRTP)
	switch {
	case errors.Is(err, errSRTPRequired):
		return "", nil, &sipError{sip.StatusNotAcceptableHere, "Not Acceptable Here: SRTP required (RTP/SAVP with a=crypto)"}
	case errors.Is(err, errNoCommonCode):
		return "", nil, &sipError{sip.StatusNotAcceptableHere, "Not Acceptable Here: PCMU, PCMA or H.264 mode 1 over RTP/AVP"}
	case err != nil:
		return "", nil, &sipError{sip.StatusBadRequest, "Malformed SDP"}
	}
	return meeting, offer, nil
}

// onInvite answers a new call, or a re-INVITE of a call in progress.
func (g *Gateway) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	g.m.request("INVITE")
	if to := req.To(); to != nil {
		if _, inDialog := to.Params.Get("tag"); inDialog {
			g.reinvite(req, tx)
			return
		}
	}
	log := g.log.With("call_id", callIDOf(req), "from", req.Source(), "transport", req.Transport())
	meeting, offer, err := checkInvite(req, g.srtpRequired())
	if err != nil {
		var se *sipError
		errors.As(err, &se)
		log.Info("sip call refused", "status", se.status, "reason", se.reason)
		g.m.Calls.WithLabelValues(outcomeRejected).Inc()
		g.respond(req, tx, se.status, se.reason)
		return
	}
	if !g.allowed(req) {
		log.Warn("sip call refused: source not in the allowed networks")
		g.m.Calls.WithLabelValues(outcomeRejected).Inc()
		g.respond(req, tx, sip.StatusForbidden, "Forbidden: calls are not taken from this network")
		return
	}
	if ext := unsupported(req); ext != "" {
		log.Info("sip call refused: an extension it requires is not supported", "require", ext)
		g.m.Calls.WithLabelValues(outcomeRejected).Inc()
		g.respond(req, tx, sip.StatusBadExtension, "Bad Extension", sip.NewHeader("Unsupported", ext))
		return
	}
	timer, refusal := g.negotiateTimer(req, sessionTimer{})
	if refusal != nil {
		log.Info("sip call refused", "status", refusal.status, "reason", refusal.reason)
		g.m.Calls.WithLabelValues(outcomeRejected).Inc()
		g.refuseTimer(req, tx, refusal)
		return
	}
	site := g.cfg.Site
	if g.auth != nil {
		acc, ok, challenge := g.auth.check(req, time.Now())
		if !ok {
			log.Info("sip call challenged", "had_credentials", req.GetHeader("Authorization") != nil)
			g.m.Calls.WithLabelValues(outcomeRejected).Inc()
			g.respond(req, tx, sip.StatusUnauthorized, "Unauthorized", sip.NewHeader("WWW-Authenticate", challenge))
			return
		}
		site = acc.Site
		log = log.With("user", acc.User, "site", site)
	}
	g.mu.Lock()
	busy, closed := len(g.calls) >= g.cfg.MaxCalls, g.closed
	_, dup := g.calls[callIDOf(req)]
	g.mu.Unlock()
	switch {
	case closed:
		g.m.Calls.WithLabelValues(outcomeRejected).Inc()
		g.respond(req, tx, sip.StatusServiceUnavailable, "Service Unavailable")
		return
	case dup:
		g.respond(req, tx, sip.StatusLoopDetected, "Call-ID in use")
		return
	case busy:
		log.Warn("sip call refused: gateway full", "max_calls", g.cfg.MaxCalls)
		g.m.Calls.WithLabelValues(outcomeRejected).Inc()
		g.respond(req, tx, sip.StatusBusyHere, "Busy Here: the gateway has as many calls as it may")
		return
	}
	dlg, err := g.dialogUA(req.Transport()).ReadInvite(req, tx)
	if err != nil {
		log.Info("sip call refused", "err", err)
		g.m.Calls.WithLabelValues(outcomeRejected).Inc()
		g.respond(req, tx, sip.StatusBadRequest, "Bad Request")
		return
	}
	_ = dlg.Respond(sip.StatusTrying, "Trying", nil)
	c := newCall(g, dlg, meeting, req, log.With("meeting", meeting))
	c.site = site
	g.answer(c, offer, timer)
}

// supportedExtensions are the option tags a request may Require (RFC 3261 §8.2.2.3).
var supportedExtensions = map[string]bool{"timer": true}

// unsupported lists the extensions req requires that the gateway lacks ("" if none).
func unsupported(req *sip.Request) string {
	var out []string
	for _, h := range req.GetHeaders("Require") {
		for _, opt := range strings.Split(h.Value(), ",") {
			if opt = strings.TrimSpace(opt); opt != "" && !supportedExtensions[strings.ToLower(opt)] {
				out = append(out, opt)
			}
		}
	}
	return strings.Join(out, ", ")
}

// srtpRequired reports whether calls must use SRTP.
func (g *Gateway) srtpRequired() bool { return g.cfg.SRTP == SRTPMandatory }

// allowed reports whether req's source address (the packet's or the connection's, not
// its Via header) is in Config.Allow.
func (g *Gateway) allowed(req *sip.Request) bool {
	if len(g.cfg.Allow) == 0 {
		return true
	}
	src, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return false
	}
	for _, p := range g.cfg.Allow {
		if p.Contains(src.Addr().Unmap()) {
			return true
		}
	}
	return false
}
