package rooms

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"
)

// LoadTree reads a site tree from YAML and validates it (see [NewTree]). The format is
//
//	sites:
//	  - id: vn
//	    name: Trung ương
//	    level: central
//	  - id: gl
//	    name: Tỉnh Gia Lai
//	    level: province
//	    parent: vn
//
// Decoding is strict: unknown or repeated keys, a second YAML document, and values that
// are not plain scalars are errors. Errors name the line of the offending site.
func LoadTree(r io.Reader) (*Tree, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("load site tree: %w", err)
	}
	sites, lines, err := parseSitesYAML(data)
	if err != nil {
		return nil, fmt.Errorf("load site tree: %w", err)
	}
	t, err := newTree(sites, func(i int) string { return fmt.Sprintf("line %d", lines[i]) })
	if err != nil {
		return nil, fmt.Errorf("load site tree: %w", err)
	}
	return t, nil
}

// LoadTreeFile reads a site tree from a YAML file; see [LoadTree].
func LoadTreeFile(path string) (*Tree, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load site tree: %w", err)
	}
	defer f.Close()
	t, err := LoadTree(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// MarshalYAML writes the tree in the format [LoadTree] reads, in preorder.
func (t *Tree) MarshalYAML() (any, error) {
	return struct {
		Sites []Site `yaml:"sites"`
	}{t.Sites()}, nil
}

// parseSitesYAML walks the YAML node tree by hand: it is strict, keeps line numbers
// for validation messages, and is faster than reflection for 11,000 sites.
func parseSitesYAML(data []byte) ([]Site, []int, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, fmt.Errorf("%w: empty document", ErrSyntax)
		}
		return nil, nil, fmt.Errorf("%w: %w", ErrSyntax, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("%w: line %d: more than one YAML document", ErrSyntax, extra.Line)
	}
	top := &doc
	if top.Kind == yaml.DocumentNode && len(top.Content) == 1 {
		top = top.Content[0]
	}
	if top.Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("%w: line %d: want a mapping with key \"sites\"", ErrSyntax, top.Line)
	}
	var list *yaml.Node
	for k := 0; k+1 < len(top.Content); k += 2 {
		key, val := top.Content[k], top.Content[k+1]
		if key.Value != "sites" {
			return nil, nil, fmt.Errorf("%w: line %d: unknown key %q (want \"sites\")", ErrSyntax, key.Line, key.Value)
		}
		if list != nil {
			return nil, nil, fmt.Errorf("%w: line %d: key \"sites\" repeated", ErrSyntax, key.Line)
		}
		list = val
	}
	if list == nil {
		return nil, nil, fmt.Errorf("%w: no \"sites\" key", ErrSyntax)
	}
	if list.Kind != yaml.SequenceNode {
		return nil, nil, fmt.Errorf("%w: line %d: \"sites\" must be a list", ErrSyntax, list.Line)
	}
	sites := make([]Site, len(list.Content))
	lines := make([]int, len(list.Content))
	for i, item := range list.Content {
		lines[i] = item.Line
		if item.Kind != yaml.MappingNode {
			return nil, nil, fmt.Errorf("%w: line %d: a site must be a mapping", ErrSyntax, item.Line)
		}
		var seen [4]bool
		for k := 0; k+1 < len(item.Content); k += 2 {
			key, val := item.Content[k], item.Content[k+1]
			var f int
			switch key.Value {
			case "id":
				f = 0
			case "name":
				f = 1
			case "level":
				f = 2
			case "parent":
				f = 3
			default:
				return nil, nil, fmt.Errorf("%w: line %d: unknown key %q (want id, name, level, parent)", ErrSyntax, key.Line, key.Value)
			}
			if seen[f] {
				return nil, nil, fmt.Errorf("%w: line %d: key %q repeated", ErrSyntax, key.Line, key.Value)
			}
			seen[f] = true
			if val.Kind != yaml.ScalarNode {
				return nil, nil, fmt.Errorf("%w: line %d: %s must be a plain value", ErrSyntax, val.Line, key.Value)
			}
			v := val.Value
			if val.Tag == "!!null" {
				v = ""
			}
			switch f {
			case 0:
				sites[i].ID = v
			case 1:
				sites[i].Name = v
			case 2:
				sites[i].Level = Level(v)
			case 3:
				sites[i].Parent = v
			}
		}
	}
	return sites, lines, nil
}
