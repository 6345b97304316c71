package loadtest

import "fmt"

// Site is one place in the administrative tree, as the tree file describes it (cau
// loadtest --tree reads one with package rooms; the tester itself does not).
type Site struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Level  string `json:"level"`
	Parent string `json:"parent,omitempty"`
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
