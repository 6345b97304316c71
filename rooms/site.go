package rooms

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Level is a site's administrative level. The four known levels have a rank
// (central 0 … commune 3); a tree may use any subset of them (since July 2025 most
// provinces have no districts), so depth is data, not code.
type Level string

// The administrative levels, from the top.
const (
	LevelCentral  Level = "central"  // Trung ương
	LevelProvince Level = "province" // tỉnh / thành phố trực thuộc TW
	LevelDistrict Level = "district" // huyện / quận / thị xã (until 1 July 2025)
	LevelCommune  Level = "commune"  // xã / phường / thị trấn / đặc khu
)

// Rank is the level's place from the top (central 0, commune 3), or -1 if unknown.
func (l Level) Rank() int {
	switch l {
	case LevelCentral:
		return 0
	case LevelProvince:
		return 1
	case LevelDistrict:
		return 2
	case LevelCommune:
		return 3
	}
	return -1
}

// Valid reports whether l is one of the known levels.
func (l Level) Valid() bool { return l.Rank() >= 0 }

// Site is a place in the administrative tree. Parent is empty for the root only.
type Site struct {
	ID     string `json:"id" yaml:"id"`
	Name   string `json:"name" yaml:"name"`
	Level  Level  `json:"level" yaml:"level"`
	Parent string `json:"parent,omitempty" yaml:"parent,omitempty"`
}

// node is a site plus its position in the tree. Sites are laid out in preorder, so a
// site's subtree is the contiguous range order[pre : pre+size].
type node struct {
	site     Site
	parent   int32 // index into Tree.nodes, -1 for the root
	children []int32
	depth    int32 // root is 0
	pre      int32 // position in preorder
	size     int32 // number of sites in the subtree, itself included
}

// Tree is a validated site tree. It is immutable after [NewTree] or [LoadTree], so it is
// safe for concurrent use without a lock; to change the tree build a new one.
type Tree struct {
	nodes []node           // in input order
	index map[string]int32 // id → index into nodes
	order []int32          // preorder (children in input order)
	root  int32
}

// maxReported caps how many problems one validation error lists.
const maxReported = 20

// NewTree validates sites and builds a tree. It reports, joined into one error, every
// problem found (up to 20): empty ids, duplicate ids, unknown levels, unknown parents,
// no root or more than one root, a level above its parent's, and cycles. Each problem
// wraps a sentinel (ErrDuplicateSite, ErrUnknownParent, ErrCycle, …) for errors.Is.
func NewTree(sites []Site) (*Tree, error) {
	return newTree(sites, nil)
}

// newTree is NewTree with an optional "where" for messages (e.g. "line 12").
func newTree(sites []Site, where func(i int) string) (*Tree, error) {
	var problems []error
	report := func(i int, err error) {
		if i >= 0 && where != nil {
			err = fmt.Errorf("%s: %w", where(i), err)
		}
		problems = append(problems, err)
	}
	t := &Tree{nodes: make([]node, len(sites)), index: make(map[string]int32, len(sites)), root: -1}
	for i, s := range sites {
		t.nodes[i] = node{site: s, parent: -1}
		switch {
		case s.ID == "":
			report(i, fmt.Errorf("site #%d (name %q): %w", i+1, s.Name, ErrEmptyID))
			continue
		case !s.Level.Valid():
			report(i, fmt.Errorf("site %s: %w %q (want central, province, district or commune)", s.ID, ErrUnknownLevel, s.Level))
		}
		if j, dup := t.index[s.ID]; dup {
			report(i, fmt.Errorf("site %s: %w (also site #%d)", s.ID, ErrDuplicateSite, j+1))
			continue
		}
		t.index[s.ID] = int32(i)
	}
	var roots []string
	for i := range t.nodes {
		n := &t.nodes[i]
		if n.site.ID == "" || t.index[n.site.ID] != int32(i) {
			continue // already reported
		}
		if n.site.Parent == "" {
			roots = append(roots, n.site.ID)
			if t.root < 0 {
				t.root = int32(i)
			}
			continue
		}
		p, ok := t.index[n.site.Parent]
		if !ok {
			report(i, fmt.Errorf("site %s: %w %q", n.site.ID, ErrUnknownParent, n.site.Parent))
			continue
		}
		n.parent = p
		t.nodes[p].children = append(t.nodes[p].children, int32(i))
		pl, l := t.nodes[p].site.Level, n.site.Level
		if pl.Valid() && l.Valid() && l.Rank() < pl.Rank() {
			report(i, fmt.Errorf("site %s: %w: %s under %s %s", n.site.ID, ErrLevelOrder, l, pl, n.site.Parent))
		}
	}
	switch {
	case len(roots) == 0 && len(sites) > 0:
		report(-1, ErrNoRoot)
	case len(roots) > 1:
		report(-1, fmt.Errorf("%w: %s", ErrMultipleRoots, strings.Join(roots, ", ")))
	}
	if len(sites) == 0 {
		report(-1, fmt.Errorf("%w: no sites", ErrNoRoot))
	}
	if t.root >= 0 {
		t.layout()
		if len(t.order) < len(t.index) {
			for _, c := range t.cycles() {
				report(-1, c)
			}
		}
	}
	if len(problems) > 0 {
		if len(problems) > maxReported {
			n := len(problems)
			problems = append(problems[:maxReported], fmt.Errorf("… and %d more problems", n-maxReported))
		}
		return nil, errors.Join(problems...)
	}
	return t, nil
}

// layout computes preorder positions, depths and subtree sizes from the root, without
// recursion (a deep or degenerate tree must not blow the stack).
func (t *Tree) layout() {
	t.order = make([]int32, 0, len(t.nodes))
	stack := []int32{t.root}
	t.nodes[t.root].depth = 0
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n := &t.nodes[i]
		n.pre = int32(len(t.order))
		t.order = append(t.order, i)
		for k := len(n.children) - 1; k >= 0; k-- { // reversed so children pop in order
			c := n.children[k]
			t.nodes[c].depth = n.depth + 1
			stack = append(stack, c)
		}
	}
	// Sizes: in reverse preorder every child comes before its parent.
	for k := len(t.order) - 1; k >= 0; k-- {
		n := &t.nodes[t.order[k]]
		n.size++
		if n.parent >= 0 {
			t.nodes[n.parent].size += n.size
		}
	}
}

// cycles describes each cycle among the sites the root does not reach. Every such
// site has a known parent (else it was reported already), so walking parents from it
// must loop.
func (t *Tree) cycles() []error {
	reached := make([]bool, len(t.nodes))
	for _, i := range t.order {
		reached[i] = true
	}
	done := make([]bool, len(t.nodes))
	var out []error
	for i := range t.nodes {
		if reached[i] || done[i] || t.nodes[i].parent < 0 {
			continue
		}
		pos := map[int32]int{} // index → position on this walk
		var path []int32
		j := int32(i)
		for j >= 0 && !done[j] && !reached[j] {
			if k, seen := pos[j]; seen {
				ids := make([]string, 0, len(path)-k+1)
				for _, x := range path[k:] {
					ids = append(ids, t.nodes[x].site.ID)
				}
				ids = append(ids, t.nodes[j].site.ID)
				out = append(out, fmt.Errorf("%w: %s", ErrCycle, strings.Join(ids, " → ")))
				break
			}
			pos[j] = len(path)
			path = append(path, j)
			j = t.nodes[j].parent
		}
		for _, x := range path {
			done[x] = true
		}
	}
	return out
}

// Len is the number of sites.
func (t *Tree) Len() int { return len(t.order) }

// Root is the root site.
func (t *Tree) Root() Site { return t.nodes[t.root].site }

// Has reports whether id is a site of the tree.
func (t *Tree) Has(id string) bool { _, ok := t.index[id]; return ok }

// Site returns the site with that id.
func (t *Tree) Site(id string) (Site, bool) {
	i, ok := t.index[id]
	if !ok {
		return Site{}, false
	}
	return t.nodes[i].site, true
}

// Name is the site's name, or the id itself if the site is unknown or unnamed.
func (t *Tree) Name(id string) string {
	if s, ok := t.Site(id); ok && s.Name != "" {
		return s.Name
	}
	return id
}

// Depth is the number of edges from the root (the root is 0), or -1 if unknown.
func (t *Tree) Depth(id string) int {
	i, ok := t.index[id]
	if !ok {
		return -1
	}
	return int(t.nodes[i].depth)
}

// Sites returns every site in preorder (a parent before its children, children in the
// order they were given).
func (t *Tree) Sites() []Site {
	out := make([]Site, len(t.order))
	for k, i := range t.order {
		out[k] = t.nodes[i].site
	}
	return out
}

// Children returns the ids of a site's children, in the order they were given.
func (t *Tree) Children(id string) []string {
	i, ok := t.index[id]
	if !ok {
		return nil
	}
	out := make([]string, len(t.nodes[i].children))
	for k, c := range t.nodes[i].children {
		out[k] = t.nodes[c].site.ID
	}
	return out
}

// Ancestors returns the ids of a site's ancestors, nearest first (parent, grandparent,
// …, root). The root has none; an unknown site has none.
func (t *Tree) Ancestors(id string) []string {
	i, ok := t.index[id]
	if !ok {
		return nil
	}
	out := make([]string, 0, t.nodes[i].depth)
	for p := t.nodes[i].parent; p >= 0; p = t.nodes[p].parent {
		out = append(out, t.nodes[p].site.ID)
	}
	return out
}

// PathToRoot returns the site itself followed by its ancestors, nearest first.
func (t *Tree) PathToRoot(id string) []string {
	if !t.Has(id) {
		return nil
	}
	return append([]string{id}, t.Ancestors(id)...)
}

// Subtree returns the site and every site below it, in preorder. It costs one copy of
// the result: a subtree is a contiguous run of the tree's preorder.
func (t *Tree) Subtree(id string) []string {
	i, ok := t.index[id]
	if !ok {
		return nil
	}
	n := t.nodes[i]
	out := make([]string, n.size)
	for k, j := range t.order[n.pre : n.pre+n.size] {
		out[k] = t.nodes[j].site.ID
	}
	return out
}

// IsAncestor reports whether a is b or an ancestor of b, in constant time.
func (t *Tree) IsAncestor(a, b string) bool {
	i, ok1 := t.index[a]
	j, ok2 := t.index[b]
	if !ok1 || !ok2 {
		return false
	}
	ni, nj := t.nodes[i], t.nodes[j]
	return ni.pre <= nj.pre && nj.pre < ni.pre+ni.size
}

// LowestCommonAncestor returns the deepest site that is an ancestor of (or equal to)
// both a and b.
func (t *Tree) LowestCommonAncestor(a, b string) (string, error) {
	i, ok := t.index[a]
	if !ok {
		return "", fmt.Errorf("lowest common ancestor: %w %q", ErrUnknownSite, a)
	}
	j, ok := t.index[b]
	if !ok {
		return "", fmt.Errorf("lowest common ancestor: %w %q", ErrUnknownSite, b)
	}
	for t.nodes[i].depth > t.nodes[j].depth {
		i = t.nodes[i].parent
	}
	for t.nodes[j].depth > t.nodes[i].depth {
		j = t.nodes[j].parent
	}
	for i != j {
		i, j = t.nodes[i].parent, t.nodes[j].parent
	}
	return t.nodes[i].site.ID, nil
}

// Levels returns the levels present in the tree, from the top (central first).
func (t *Tree) Levels() []Level {
	seen := map[Level]bool{}
	var out []Level
	for i := range t.nodes {
		if l := t.nodes[i].site.Level; !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b Level) int { return a.Rank() - b.Rank() })
	return out
}

// CountByLevel returns how many sites the tree has at each level.
func (t *Tree) CountByLevel() map[Level]int {
	out := map[Level]int{}
	for i := range t.nodes {
		out[t.nodes[i].site.Level]++
	}
	return out
}
