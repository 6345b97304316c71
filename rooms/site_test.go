package rooms_test

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cau-project/cau/rooms"
)

// fourLevel is a small tree used across the package's tests:
//
//	tw ─┬─ p1 ─┬─ p1-d1 ─┬─ p1-d1-c1
//	    │      │         └─ p1-d1-c2
//	    │      └─ p1-d2 ─── p1-d2-c1
//	    └─ p2 ─── p2-d1 ─── p2-d1-c1
const fourLevelYAML = `
sites:
  - {id: tw, name: Trung ương, level: central}
  - {id: p1, name: Tỉnh Một, level: province, parent: tw}
  - {id: p1-d1, name: Huyện Một, level: district, parent: p1}
  - {id: p1-d1-c1, name: Xã Một, level: commune, parent: p1-d1}
  - {id: p1-d1-c2, name: Xã Hai, level: commune, parent: p1-d1}
  - {id: p1-d2, name: Huyện Hai, level: district, parent: p1}
  - {id: p1-d2-c1, name: Xã Ba, level: commune, parent: p1-d2}
  - {id: p2, name: Tỉnh Hai, level: province, parent: tw}
  - {id: p2-d1, name: Huyện Ba, level: district, parent: p2}
  - {id: p2-d1-c1, name: "Xã Bốn, \"quoted\"", level: commune, parent: p2-d1}
`

func mustTree(t testing.TB, y string) *rooms.Tree {
	t.Helper()
	tree, err := rooms.LoadTree(strings.NewReader(y))
	if err != nil {
		t.Fatalf("LoadTree: %v", err)
	}
	return tree
}

func TestTreeQueries(t *testing.T) {
	tree := mustTree(t, fourLevelYAML)
	if got := tree.Len(); got != 10 {
		t.Fatalf("Len = %d, want 10", got)
	}
	if got := tree.Root().ID; got != "tw" {
		t.Errorf("Root = %q, want tw", got)
	}
	s, ok := tree.Site("p1-d1")
	if !ok || s.Name != "Huyện Một" || s.Level != rooms.LevelDistrict || s.Parent != "p1" {
		t.Errorf("Site(p1-d1) = %+v, %v", s, ok)
	}
	if _, ok := tree.Site("nope"); ok {
		t.Error("Site(nope) found")
	}
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"Children(tw)", tree.Children("tw"), []string{"p1", "p2"}},
		{"Children(p1-d1)", tree.Children("p1-d1"), []string{"p1-d1-c1", "p1-d1-c2"}},
		{"Children(leaf)", tree.Children("p1-d1-c1"), []string{}},
		{"Children(unknown)", tree.Children("x"), nil},
		{"Ancestors(commune)", tree.Ancestors("p1-d1-c2"), []string{"p1-d1", "p1", "tw"}},
		{"Ancestors(root)", tree.Ancestors("tw"), []string{}},
		{"PathToRoot(commune)", tree.PathToRoot("p2-d1-c1"), []string{"p2-d1-c1", "p2-d1", "p2", "tw"}},
		{"PathToRoot(root)", tree.PathToRoot("tw"), []string{"tw"}},
		{"Subtree(p1)", tree.Subtree("p1"), []string{"p1", "p1-d1", "p1-d1-c1", "p1-d1-c2", "p1-d2", "p1-d2-c1"}},
		{"Subtree(leaf)", tree.Subtree("p2-d1-c1"), []string{"p2-d1-c1"}},
		{"Subtree(root) is preorder", tree.Subtree("tw"), []string{"tw", "p1", "p1-d1", "p1-d1-c1", "p1-d1-c2", "p1-d2", "p1-d2-c1", "p2", "p2-d1", "p2-d1-c1"}},
		{"Subtree(unknown)", tree.Subtree("x"), nil},
	}
	for _, tc := range tests {
		if !slices.Equal(tc.got, tc.want) || (tc.want == nil) != (tc.got == nil) {
			t.Errorf("%s = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	lca := []struct{ a, b, want string }{
		{"p1-d1-c1", "p1-d1-c2", "p1-d1"},
		{"p1-d1-c1", "p1-d2-c1", "p1"},
		{"p1-d1-c1", "p2-d1-c1", "tw"},
		{"p1-d1-c1", "p1", "p1"},
		{"p1", "p1-d1-c1", "p1"},
		{"tw", "tw", "tw"},
		{"p2-d1-c1", "p2-d1-c1", "p2-d1-c1"},
	}
	for _, tc := range lca {
		got, err := tree.LowestCommonAncestor(tc.a, tc.b)
		if err != nil || got != tc.want {
			t.Errorf("LowestCommonAncestor(%s, %s) = %q, %v; want %q", tc.a, tc.b, got, err, tc.want)
		}
	}
	if _, err := tree.LowestCommonAncestor("p1", "zz"); !errors.Is(err, rooms.ErrUnknownSite) {
		t.Errorf("LowestCommonAncestor(unknown) err = %v, want ErrUnknownSite", err)
	}
	if got := tree.Levels(); !slices.Equal(got, []rooms.Level{rooms.LevelCentral, rooms.LevelProvince, rooms.LevelDistrict, rooms.LevelCommune}) {
		t.Errorf("Levels = %v", got)
	}
	if got := tree.Depth("p1-d2-c1"); got != 3 {
		t.Errorf("Depth = %d, want 3", got)
	}
	for _, tc := range []struct {
		a, b string
		want bool
	}{{"tw", "p2-d1-c1", true}, {"p1", "p1", true}, {"p1", "p2-d1", false}, {"p1-d1-c1", "p1", false}, {"x", "p1", false}} {
		if got := tree.IsAncestor(tc.a, tc.b); got != tc.want {
			t.Errorf("IsAncestor(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
	if got := tree.Name("p2-d1-c1"); got != `Xã Bốn, "quoted"` {
		t.Errorf("Name = %q", got)
	}
}

func TestTreeValidation(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		want  []error
		inMsg []string
	}{
		{
			name:  "duplicate id",
			yaml:  "sites:\n- {id: a, level: central}\n- {id: b, level: province, parent: a}\n- {id: b, level: province, parent: a}\n",
			want:  []error{rooms.ErrDuplicateSite},
			inMsg: []string{"line 4", "site b"},
		},
		{
			name:  "unknown parent",
			yaml:  "sites:\n- {id: a, level: central}\n- {id: b, level: province, parent: zz}\n",
			want:  []error{rooms.ErrUnknownParent},
			inMsg: []string{"line 3", `"zz"`},
		},
		{
			name:  "cycle",
			yaml:  "sites:\n- {id: r, level: central}\n- {id: a, level: province, parent: c}\n- {id: b, level: province, parent: a}\n- {id: c, level: province, parent: b}\n- {id: d, level: commune, parent: c}\n",
			want:  []error{rooms.ErrCycle},
			inMsg: []string{"a → c → b → a"},
		},
		{
			name: "self parent",
			yaml: "sites:\n- {id: r, level: central}\n- {id: a, level: province, parent: a}\n",
			want: []error{rooms.ErrCycle},
		},
		{
			name:  "two roots",
			yaml:  "sites:\n- {id: a, level: central}\n- {id: b, level: province}\n",
			want:  []error{rooms.ErrMultipleRoots},
			inMsg: []string{"a, b"},
		},
		{
			name: "no root (all in a cycle)",
			yaml: "sites:\n- {id: a, level: province, parent: b}\n- {id: b, level: province, parent: a}\n",
			want: []error{rooms.ErrNoRoot},
		},
		{
			name:  "empty id",
			yaml:  "sites:\n- {id: a, level: central}\n- {id: '', name: Xã Trống, level: commune, parent: a}\n",
			want:  []error{rooms.ErrEmptyID},
			inMsg: []string{"Xã Trống"},
		},
		{
			name: "no sites",
			yaml: "sites: []\n",
			want: []error{rooms.ErrNoRoot},
		},
		{
			name:  "unknown level",
			yaml:  "sites:\n- {id: a, level: national}\n",
			want:  []error{rooms.ErrUnknownLevel},
			inMsg: []string{"national"},
		},
		{
			name: "province under commune",
			yaml: "sites:\n- {id: a, level: commune}\n- {id: b, level: province, parent: a}\n",
			want: []error{rooms.ErrLevelOrder},
		},
		{
			name: "several problems reported together",
			yaml: "sites:\n- {id: a, level: central}\n- {id: a, level: central}\n- {id: c, level: commune, parent: q}\n- {id: d, level: province}\n",
			want: []error{rooms.ErrDuplicateSite, rooms.ErrUnknownParent, rooms.ErrMultipleRoots},
		},
		{
			name:  "unknown key",
			yaml:  "sites:\n- {id: a, level: central, colour: red}\n",
			want:  []error{rooms.ErrSyntax},
			inMsg: []string{"line 2", `"colour"`},
		},
		{
			name:  "unknown top-level key",
			yaml:  "sites: []\nbridges: []\n",
			want:  []error{rooms.ErrSyntax},
			inMsg: []string{`"bridges"`},
		},
		{
			name:  "repeated key",
			yaml:  "sites:\n- id: a\n  level: central\n  id: b\n",
			want:  []error{rooms.ErrSyntax},
			inMsg: []string{"repeated"},
		},
		{
			name: "not a list",
			yaml: "sites: {id: a}\n",
			want: []error{rooms.ErrSyntax},
		},
		{
			name: "nested value",
			yaml: "sites:\n- {id: a, level: central, name: [x]}\n",
			want: []error{rooms.ErrSyntax},
		},
		{
			name:  "second document",
			yaml:  "sites:\n- {id: a, level: central}\n---\nsites: []\n",
			want:  []error{rooms.ErrSyntax},
			inMsg: []string{"more than one"},
		},
		{
			name: "empty input",
			yaml: "",
			want: []error{rooms.ErrSyntax},
		},
		{
			name: "bad yaml",
			yaml: "sites: [\n",
			want: []error{rooms.ErrSyntax},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tree, err := rooms.LoadTree(strings.NewReader(tc.yaml))
			if err == nil {
				t.Fatalf("LoadTree succeeded with %d sites, want error", tree.Len())
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("error %q does not match %v", err, w)
				}
			}
			for _, s := range tc.inMsg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestTreeYAMLRoundTrip(t *testing.T) {
	tree := mustTree(t, fourLevelYAML)
	out, err := yaml.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	again, err := rooms.LoadTree(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("reload %s: %v", out, err)
	}
	if !slices.Equal(again.Sites(), tree.Sites()) {
		t.Errorf("round trip changed the tree:\n%s", out)
	}
}

func TestNewTreeCapsProblems(t *testing.T) {
	sites := []rooms.Site{{ID: "r", Level: rooms.LevelCentral}}
	for i := range 50 {
		sites = append(sites, rooms.Site{ID: fmt.Sprint("s", i), Level: rooms.LevelCommune, Parent: "missing"})
	}
	_, err := rooms.NewTree(sites)
	if !errors.Is(err, rooms.ErrUnknownParent) || !strings.Contains(err.Error(), "and 30 more problems") {
		t.Fatalf("err = %v", err)
	}
}

func TestSelect(t *testing.T) {
	tree := mustTree(t, fourLevelYAML)
	tests := []struct {
		name string
		sels []rooms.Selection
		want []string
	}{
		{"province and its communes", []rooms.Selection{{Root: "p1", Levels: []rooms.Level{rooms.LevelCommune}}},
			[]string{"p1", "p1-d1-c1", "p1-d1-c2", "p1-d2-c1"}},
		{"whole subtree", []rooms.Selection{{Root: "p2"}}, []string{"p2", "p2-d1", "p2-d1-c1"}},
		{"depth 1", []rooms.Selection{{Root: "tw", Depth: 1}}, []string{"tw", "p1", "p2"}},
		{"exclude a district", []rooms.Selection{{Root: "p1", Exclude: []string{"p1-d1"}}}, []string{"p1", "p1-d2", "p1-d2-c1"}},
		{"union keeps tree order, no duplicates", []rooms.Selection{{Root: "p2", Depth: 1}, {Root: "tw", Depth: 1}, {Root: "p1-d2"}},
			[]string{"tw", "p1", "p1-d2", "p1-d2-c1", "p2", "p2-d1"}},
		{"central, provinces, districts", []rooms.Selection{{Root: "tw", Levels: []rooms.Level{rooms.LevelProvince, rooms.LevelDistrict}}},
			[]string{"tw", "p1", "p1-d1", "p1-d2", "p2", "p2-d1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tree.Select(tc.sels...)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("Select = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := tree.Select(rooms.Selection{Root: "zz"}); !errors.Is(err, rooms.ErrUnknownSite) {
		t.Errorf("unknown root: err = %v", err)
	}
	if _, err := tree.Select(rooms.Selection{Root: "tw", Exclude: []string{"zz"}}); !errors.Is(err, rooms.ErrUnknownSite) {
		t.Errorf("unknown exclude: err = %v", err)
	}
}

// TestExamples loads every shipped example tree and checks its shape.
func TestExamples(t *testing.T) {
	dir := filepath.Join("..", "deploy", "examples")
	tests := []struct {
		file    string
		total   int
		byLevel map[rooms.Level]int
		levels  []rooms.Level
		root    string
		depth   int
	}{
		{"gia-lai.yaml", 258, map[rooms.Level]int{rooms.LevelProvince: 21, rooms.LevelDistrict: 17, rooms.LevelCommune: 220},
			[]rooms.Level{rooms.LevelProvince, rooms.LevelDistrict, rooms.LevelCommune}, "gl", 2},
		{"four-level.yaml", 28, map[rooms.Level]int{rooms.LevelCentral: 1, rooms.LevelProvince: 2, rooms.LevelDistrict: 6, rooms.LevelCommune: 19},
			[]rooms.Level{rooms.LevelCentral, rooms.LevelProvince, rooms.LevelDistrict, rooms.LevelCommune}, "tw", 3},
		{"three-level.yaml", 15, map[rooms.Level]int{rooms.LevelCentral: 1, rooms.LevelProvince: 2, rooms.LevelCommune: 12},
			[]rooms.Level{rooms.LevelCentral, rooms.LevelProvince, rooms.LevelCommune}, "tw", 2},
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) != len(tests) {
		t.Fatalf("examples: %v (%v); want %d files, each checked here", files, err, len(tests))
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			tree, err := rooms.LoadTreeFile(filepath.Join(dir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if tree.Len() != tc.total {
				t.Errorf("%d sites, want %d", tree.Len(), tc.total)
			}
			if got := tree.CountByLevel(); fmt.Sprint(got) != fmt.Sprint(tc.byLevel) {
				t.Errorf("by level %v, want %v", got, tc.byLevel)
			}
			if got := tree.Levels(); !slices.Equal(got, tc.levels) {
				t.Errorf("Levels = %v, want %v", got, tc.levels)
			}
			if tree.Root().ID != tc.root {
				t.Errorf("root %s, want %s", tree.Root().ID, tc.root)
			}
			maxDepth := 0
			for _, s := range tree.Sites() {
				maxDepth = max(maxDepth, tree.Depth(s.ID))
				if s.Name == "" {
					t.Errorf("site %s has no name", s.ID)
				}
				if strings.ToLower(s.ID) != s.ID || strings.ContainsAny(s.ID, " _") {
					t.Errorf("site id %q is not lower-case ASCII with dashes", s.ID)
				}
			}
			if maxDepth != tc.depth {
				t.Errorf("depth %d, want %d", maxDepth, tc.depth)
			}
		})
	}
	gl, err := rooms.LoadTreeFile(filepath.Join(dir, "gia-lai.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(gl.Subtree("gl-d01")); n != 24 { // Pleiku: the city + 23 wards and communes
		t.Errorf("Subtree(gl-d01) = %d sites, want 24", n)
	}
	sel, _ := gl.Select(rooms.Selection{Root: "gl", Levels: []rooms.Level{rooms.LevelCommune}})
	if len(sel) != 221 {
		t.Errorf("province + communes = %d sites, want 221", len(sel))
	}
	if _, err := rooms.LoadTreeFile(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("LoadTreeFile(missing) succeeded")
	}
}

// nationalYAML builds the 2021 national tree: 1 + 63 provinces + 705 districts +
// 10,400 communes = 11,169 sites.
func nationalYAML() string {
	var b strings.Builder
	b.WriteString("sites:\n  - {id: tw, name: Trung ương, level: central}\n")
	d, c := 0, 0
	for p := range 63 {
		fmt.Fprintf(&b, "  - {id: p%02d, name: Tỉnh %d, level: province, parent: tw}\n", p, p)
		nd := 705 / 63
		if p < 705%63 {
			nd++
		}
		for range nd {
			fmt.Fprintf(&b, "  - {id: d%03d, name: Huyện %d, level: district, parent: p%02d}\n", d, d, p)
			nc := 10400 / 705
			if d < 10400%705 {
				nc++
			}
			for range nc {
				fmt.Fprintf(&b, "  - {id: c%05d, name: Xã %d, level: commune, parent: d%03d}\n", c, c, d)
				c++
			}
			d++
		}
	}
	return b.String()
}

func TestNationalTree(t *testing.T) {
	tree := mustTree(t, nationalYAML())
	if tree.Len() != 11169 {
		t.Fatalf("Len = %d, want 11169", tree.Len())
	}
	counts := tree.CountByLevel()
	if counts[rooms.LevelDistrict] != 705 || counts[rooms.LevelCommune] != 10400 {
		t.Errorf("counts %v", counts)
	}
	if n := len(tree.Subtree("tw")); n != 11169 {
		t.Errorf("Subtree(tw) = %d", n)
	}
	if got, _ := tree.LowestCommonAncestor("c00000", "c10399"); got != "tw" {
		t.Errorf("LCA = %s", got)
	}
}

func BenchmarkLoadTreeNational(b *testing.B) {
	y := nationalYAML()
	b.SetBytes(int64(len(y)))
	for b.Loop() {
		if _, err := rooms.LoadTree(strings.NewReader(y)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSubtreeNational(b *testing.B) {
	tree := mustTree(b, nationalYAML())
	for b.Loop() {
		if n := len(tree.Subtree("tw")); n != 11169 {
			b.Fatal(n)
		}
		if n := len(tree.Subtree("p07")); n < 100 {
			b.Fatal(n)
		}
	}
}

func BenchmarkSelectProvinceCommunes(b *testing.B) {
	tree := mustTree(b, nationalYAML())
	sel := rooms.Selection{Root: "tw", Levels: []rooms.Level{rooms.LevelProvince, rooms.LevelCommune}}
	for b.Loop() {
		if _, err := tree.Select(sel); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewTreeNational(b *testing.B) {
	sites := mustTree(b, nationalYAML()).Sites()
	for b.Loop() {
		if _, err := rooms.NewTree(sites); err != nil {
			b.Fatal(err)
		}
	}
}
