package whip

import (
	"net/http"

	"github.com/pion/webrtc/v4"

	"github.com/cau-project/cau/internal/httpapi"
	"github.com/cau-project/cau/protocol"
)

// session is what DELETE and PATCH on a session's URL need of it: a WHIP publisher
// (resource) and a WHEP viewer answer them the same way.
type session interface {
	// identity is the meeting the session is in and the hash of the token that created it.
	identity() (meeting string, tokenHash [32]byte)
	// version is the session's ETag and its offer's ICE username fragment (patch.go).
	version() (etag, ufrag string)
	// trickle applies one trickled candidate; an error is the answer.
	trickle(c protocol.ICECandidate) *httpapi.Error
	// end ends the session: its endpoint leaves.
	end()
}

// sessionHandlers are the DELETE and PATCH handlers of the sessions get finds by id
// (under g.mu); what names them in errors ("WHIP", "WHEP").
func (g *Gateway) sessionHandlers(what string, get func(id string) (session, bool)) (del, patch http.HandlerFunc) {
	find := func(w http.ResponseWriter, r *http.Request) session {
		httpapi.SetHeaders(w)
		cors(w)
		g.mu.Lock()
		s, ok := get(r.PathValue("id"))
		g.mu.Unlock()
		if !ok {
			g.fail(w, r, http.StatusNotFound, httpapi.CodeNotFound, "no such "+what+" session")
			return nil
		}
		if meeting, hash := s.identity(); meeting != r.PathValue("meeting") {
			g.fail(w, r, http.StatusNotFound, httpapi.CodeNotFound, "no such "+what+" session")
			return nil
		} else if !g.sameToken(w, r, hash) {
			return nil
		}
		return s
	}
	del = func(w http.ResponseWriter, r *http.Request) {
		if s := find(w, r); s != nil {
			s.end()
			w.WriteHeader(http.StatusNoContent)
		}
	}
	// PATCH: trickled candidates (see patch.go).
	patch = func(w http.ResponseWriter, r *http.Request) {
		s := find(w, r)
		if s == nil {
			return
		}
		etag, ufrag := s.version()
		f, ok := g.readPatch(w, r, etag, ufrag)
		if !ok {
			return
		}
		for _, c := range f.candidates {
			if e := s.trickle(c); e != nil {
				g.fail(w, r, e.Status, e.Code, e.Message)
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}
	return del, patch
}

// lookupIn finds sessions by id in m (a map guarded by Gateway.mu, never replaced).
func lookupIn[S session](m map[string]S) func(id string) (session, bool) {
	return func(id string) (session, bool) {
		s, ok := m[id]
		return s, ok
	}
}

func (res *resource) identity() (string, [32]byte) { return res.meeting, res.tokenHash }
func (res *resource) version() (string, string)    { return res.etag, res.ufrag }

// trickle passes the encoder's candidate to its bridge.
func (res *resource) trickle(c protocol.ICECandidate) *httpapi.Error {
	if err := res.ep.Send(protocol.KindCandidate, protocol.Candidate{Target: protocol.TargetPublisher, Candidate: c}); err != nil {
		return httpapi.Errorf(http.StatusNotFound, httpapi.CodeNotFound, "the WHIP session ended: %v", err)
	}
	return nil
}

func (res *resource) end() {
	res.ep.Close()
	<-res.ep.Done()
}

func (v *viewer) identity() (string, [32]byte) { return v.meeting, v.tokenHash }
func (v *viewer) version() (string, string)    { return v.etag, v.ufrag }

// trickle adds the player's candidate to its connection here, a full ICE agent that
// checks it.
func (v *viewer) trickle(c protocol.ICECandidate) *httpapi.Error {
	init := webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex}
	if err := v.down.AddICECandidate(init); err != nil {
		return httpapi.Errorf(http.StatusBadRequest, httpapi.CodeBadRequest, "candidate: %v", err)
	}
	return nil
}

func (v *viewer) end() { v.close() }
