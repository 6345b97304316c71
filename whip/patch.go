package whip

// Trickle ICE over PATCH (RFC 9725 §4.3, the same for WHEP): a client that sent its offer
// before gathering every candidate sends the rest as an application/trickle-ice-sdpfrag
// body (RFC 8840) to the resource's URL, with If-Match naming the resource's ETag (or "*").
//
// The bridge is an ICE lite agent: it learns a client's addresses from the client's own
// connectivity checks, so a trickled candidate only hands it an address early. An ICE
// restart (new credentials in the fragment) would need a new offer/answer through the
// bridge, which this server does not do: 422, as RFC 9725 asks of such a server; the
// client then starts a new session with a POST.

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/cau-project/cau/internal/httpapi"
	"github.com/cau-project/cau/protocol"
)

// TrickleType is the media type of a PATCH body.
const TrickleType = "application/trickle-ice-sdpfrag"

// MaxFragmentBytes bounds a PATCH body: a fragment carries a few candidates.
const MaxFragmentBytes = 16 << 10

// maxFragmentCandidates bounds the candidates one PATCH may carry.
const maxFragmentCandidates = 64

// fragment is a parsed trickle-ice-sdpfrag body.
type fragment struct {
	ufrag, pwd string
	candidates []protocol.ICECandidate
	end        bool // a=end-of-candidates
}

// errFragment marks a body that is not a valid fragment (400).
var errFragment = errors.New("invalid trickle-ice-sdpfrag")

// parseFragment reads a fragment: session-level ICE credentials, then media sections
// (m= … with a=mid) carrying a=candidate lines. Lines it does not know are skipped, as
// SDP parsers do.
func parseFragment(body string) (fragment, error) {
	var f fragment
	var mid *string
	var index *uint16
	var mLines uint16
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case line == "":
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			f.ufrag = strings.TrimPrefix(line, "a=ice-ufrag:")
		case strings.HasPrefix(line, "a=ice-pwd:"):
			f.pwd = strings.TrimPrefix(line, "a=ice-pwd:")
		case strings.HasPrefix(line, "m="):
			i := mLines
			index, mid = &i, nil
			mLines++
		case strings.HasPrefix(line, "a=mid:"):
			m := strings.TrimPrefix(line, "a=mid:")
			mid = &m
		case strings.HasPrefix(line, "a=candidate:"):
			if mid == nil && index == nil {
				return fragment{}, fmt.Errorf("%w: a candidate outside a media section", errFragment)
			}
			if len(f.candidates) == maxFragmentCandidates {
				return fragment{}, fmt.Errorf("%w: more than %d candidates", errFragment, maxFragmentCandidates)
			}
			c := protocol.Candidate{Target: protocol.TargetPublisher,
				Candidate: protocol.ICECandidate{Candidate: strings.TrimPrefix(line, "a="), SDPMid: mid, SDPMLineIndex: index}}
			if err := c.Validate(); err != nil {
				return fragment{}, fmt.Errorf("%w: %w", errFragment, err)
			}
			if len(strings.Fields(c.Candidate.Candidate)) < 8 { // foundation component transport priority address port typ type
				return fragment{}, fmt.Errorf("%w: candidate %q has too few fields", errFragment, c.Candidate.Candidate)
			}
			f.candidates = append(f.candidates, c.Candidate)
		case line == "a=end-of-candidates":
			f.end = true
		case len(line) < 2 || line[1] != '=':
			return fragment{}, fmt.Errorf("%w: line %q", errFragment, line)
		}
	}
	return f, nil
}

// iceUfrag is the first a=ice-ufrag of an SDP, "" if none.
func iceUfrag(sdp string) string {
	for _, line := range strings.Split(sdp, "\n") {
		if u, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "a=ice-ufrag:"); ok {
			return u
		}
	}
	return ""
}

// readPatch checks a PATCH against the resource's ETag and ICE username fragment and
// returns its fragment; on failure it has answered the request.
func (g *Gateway) readPatch(w http.ResponseWriter, r *http.Request, etag, ufrag string) (fragment, bool) {
	if ct := r.Header.Get("Content-Type"); !strings.EqualFold(strings.TrimSpace(strings.Split(ct, ";")[0]), TrickleType) {
		g.fail(w, r, http.StatusUnsupportedMediaType, httpapi.CodeUnsupportedType, "a PATCH body is "+TrickleType)
		return fragment{}, false
	}
	switch m := strings.TrimSpace(r.Header.Get("If-Match")); {
	case m == "":
		g.fail(w, r, http.StatusPreconditionRequired, httpapi.CodePreconditionRequired,
			"a PATCH needs If-Match with the resource's ETag (or *)")
		return fragment{}, false
	case m != "*" && m != etag:
		g.fail(w, r, http.StatusPreconditionFailed, httpapi.CodePreconditionFailed,
			"If-Match "+m+" is not the resource's ETag")
		return fragment{}, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxFragmentBytes))
	if err != nil {
		g.fail(w, r, http.StatusRequestEntityTooLarge, httpapi.CodeTooLarge,
			fmt.Sprintf("a fragment is at most %d bytes", MaxFragmentBytes))
		return fragment{}, false
	}
	f, err := parseFragment(string(body))
	if err != nil {
		g.fail(w, r, http.StatusBadRequest, httpapi.CodeBadRequest, err.Error())
		return fragment{}, false
	}
	if (f.ufrag != "" && f.ufrag != ufrag) || (f.pwd != "" && f.ufrag == "") {
		g.fail(w, r, http.StatusUnprocessableEntity, httpapi.CodeInvalid,
			"ICE restarts are not supported: start a new session with a POST")
		return fragment{}, false
	}
	return f, true
}
