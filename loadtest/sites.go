package loadtest

import (
	"fmt"

	"github.com/cau-project/cau/rooms"
)

// Site is one place in the administrative tree, as the tree file describes it.
type Site struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Level  string `json:"level"`
	Parent string `json:"parent,omitempty"`
}

// LoadSites reads and validates a site tree file (see rooms.LoadTreeFile) and returns its
// sites parents first (preorder), so the root, the chair's site, comes first.
func LoadSites(path string) ([]Site, error) {
	t, err := rooms.LoadTreeFile(path)
	if err != nil {
		return nil, fmt.Errorf("load sites: %w", err)
	}
	var out []Site
	for _, s := range t.Sites() {
		out = append(out, Site{ID: s.ID, Name: s.Name, Level: string(s.Level), Parent: s.Parent})
	}
	return out, nil
}

// syntheticSites stands in for a tree file: n sites under one root.
func syntheticSites(n int) []Site {
	sites := make([]Site, n)
	sites[0] = Site{ID: "load-root", Name: "Load test chair", Level: "province"}
	for i := 1; i < n; i++ {
		sites[i] = Site{ID: fmt.Sprintf("load-%04d", i), Name: fmt.Sprintf("Load site %d", i), Level: "commune",
			Parent: "load-root"}
	}
	return sites
}
