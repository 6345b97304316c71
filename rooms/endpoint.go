package rooms

import "fmt"

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
}

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
	}
	return nil
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
