package rooms

import (
	"fmt"
	"strings"
	"time"
)

// EndpointKind says what an endpoint is.
type EndpointKind string

// Endpoint kinds. Only rooms count for schedule conflicts: a room device sits in one
// place and can be in one meeting at a time; a laptop can open several.
const (
	KindRoom   EndpointKind = "room"   // a meeting-room device (kiosk page; later SIP codecs)
	KindLaptop EndpointKind = "laptop" // an official's browser
)

// Valid reports whether k is a known kind.
func (k EndpointKind) Valid() bool { return k == KindRoom || k == KindLaptop }

// Endpoint is anything that joins a meeting; it belongs to a site.
type Endpoint struct {
	ID   string       `json:"id"`
	Name string       `json:"name"`
	Site string       `json:"site"`
	Kind EndpointKind `json:"kind"`
	// SIPURI is a room's hardware codec (sip:user@host[:port][;transport=tcp]): while a
	// meeting of its site is open, from its test window to its end, the SIP gateway calls
	// it and keeps it in the meeting. Empty: the room dials in itself (or uses the kiosk
	// page).
	SIPURI string `json:"sip_uri,omitempty"`
}

// maxSIPURI bounds Endpoint.SIPURI.
const maxSIPURI = 256

// ValidateEndpoint checks an endpoint's id and kind and that its site is in the tree
// (tree may be nil to skip that check).
func ValidateEndpoint(e Endpoint, tree *Tree) error {
	switch {
	case e.ID == "":
		return fmt.Errorf("endpoint %q: %w: %w", e.Name, ErrInvalidEndpoint, ErrEmptyID)
	case !e.Kind.Valid():
		return fmt.Errorf("endpoint %s: %w: kind %q (want room or laptop)", e.ID, ErrInvalidEndpoint, e.Kind)
	case e.Site == "":
		return fmt.Errorf("endpoint %s: %w: no site", e.ID, ErrInvalidEndpoint)
	case tree != nil && !tree.Has(e.Site):
		return fmt.Errorf("endpoint %s: %w: %w %q", e.ID, ErrInvalidEndpoint, ErrUnknownSite, e.Site)
	case e.SIPURI != "" && e.Kind != KindRoom:
		return fmt.Errorf("endpoint %s: %w: only a room has a SIP URI", e.ID, ErrInvalidEndpoint)
	case e.SIPURI != "" && !validSIPURI(e.SIPURI):
		return fmt.Errorf("endpoint %s: %w: sip_uri %q (want sip:user@host[:port], at most %d characters)", e.ID,
			ErrInvalidEndpoint, e.SIPURI, maxSIPURI)
	}
	return nil
}

// validSIPURI accepts sip:user@host[:port][;params]: printable ASCII without spaces or
// header separators (the gateway parses it fully when it dials).
func validSIPURI(u string) bool {
	rest, ok := strings.CutPrefix(u, "sip:")
	if !ok || len(u) > maxSIPURI || !strings.Contains(rest, "@") || strings.HasPrefix(rest, "@") ||
		strings.HasSuffix(rest, "@") {
		return false
	}
	for _, c := range rest {
		if c <= ' ' || c > '~' || c == '<' || c == '>' || c == '"' || c == ',' {
			return false
		}
	}
	return true
}

// Dial is a room endpoint the SIP gateway should have in a meeting now.
type Dial struct {
	Meeting  string
	Endpoint Endpoint
}

// DialsAt lists, for the meetings open at now (from the test window to the end, not
// ended or cancelled), the room endpoints of their sites that have a SIP URI.
func DialsAt(meetings []Meeting, endpoints []Endpoint, now time.Time) []Dial {
	bySite := map[string][]Endpoint{}
	for _, e := range endpoints {
		if e.Kind == KindRoom && e.SIPURI != "" {
			bySite[e.Site] = append(bySite[e.Site], e)
		}
	}
	var out []Dial
	for _, m := range meetings {
		if st := m.StateAt(now); st != StateTesting && st != StateLive {
			continue
		}
		for _, s := range m.Sites {
			for _, e := range bySite[s] {
				out = append(out, Dial{Meeting: m.ID, Endpoint: e})
			}
		}
	}
	return out
}

// RoomSites returns the set of sites that have at least one room endpoint.
func RoomSites(eps []Endpoint) map[string]bool {
	out := map[string]bool{}
	for _, e := range eps {
		if e.Kind == KindRoom {
			out[e.Site] = true
		}
	}
	return out
}
