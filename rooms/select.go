package rooms

import (
	"fmt"
	"slices"
)

// Selection picks meeting sites from a subtree: "the province and all its communes" is
// Selection{Root: "gl", Levels: []Level{LevelCommune}}.
type Selection struct {
	// Root is the subtree's top site; it is always selected.
	Root string `json:"root"`
	// Levels, if not empty, keeps only the sites below Root at one of these levels.
	Levels []Level `json:"levels,omitempty"`
	// Depth, if positive, keeps only the sites at most Depth levels below Root
	// (1: Root and its children).
	Depth int `json:"depth,omitempty"`
	// Exclude drops these sites and everything below them.
	Exclude []string `json:"exclude,omitempty"`
}

// Select returns the union of the selections' sites, each once, in tree preorder (a
// parent before its children), ready for [Meeting].Sites.
func (t *Tree) Select(sels ...Selection) ([]string, error) {
	picked := make([]bool, len(t.nodes))
	for _, sel := range sels {
		r, ok := t.index[sel.Root]
		if !ok {
			return nil, fmt.Errorf("select sites: root: %w %q", ErrUnknownSite, sel.Root)
		}
		var excluded []int32
		for _, x := range sel.Exclude {
			j, ok := t.index[x]
			if !ok {
				return nil, fmt.Errorf("select sites: exclude: %w %q", ErrUnknownSite, x)
			}
			excluded = append(excluded, j)
		}
		root := t.nodes[r]
		for _, j := range t.order[root.pre : root.pre+root.size] {
			n := &t.nodes[j]
			if j != r {
				if sel.Depth > 0 && n.depth-root.depth > int32(sel.Depth) {
					continue
				}
				if len(sel.Levels) > 0 && !slices.Contains(sel.Levels, n.site.Level) {
					continue
				}
			}
			if slices.ContainsFunc(excluded, func(x int32) bool {
				e := t.nodes[x]
				return e.pre <= n.pre && n.pre < e.pre+e.size
			}) {
				continue
			}
			picked[j] = true
		}
	}
	var out []string
	for _, j := range t.order {
		if picked[j] {
			out = append(out, t.nodes[j].site.ID)
		}
	}
	return out, nil
}
