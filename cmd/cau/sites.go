package main

import (
	"errors"
	"fmt"

	"github.com/cau-project/cau/config"
	"github.com/cau-project/cau/deploy/examples"
	"github.com/cau-project/cau/rooms"
)

// loadSites loads the configured site tree; dev mode falls back to the built-in example.
// Without a tree (and outside dev mode) every endpoint uses the top bridge.
func loadSites(cfg config.Config) (*rooms.Tree, error) {
	switch {
	case cfg.SitesFile != "":
		t, err := rooms.LoadTreeFile(cfg.SitesFile)
		if err != nil {
			return nil, fmt.Errorf("sites: %w", err)
		}
		return t, nil
	case cfg.Dev:
		f, err := examples.FS.Open(examples.DevTree)
		if err != nil {
			return nil, fmt.Errorf("sites: %w", err)
		}
		defer f.Close()
		t, err := rooms.LoadTree(f)
		if err != nil {
			return nil, fmt.Errorf("sites: built-in %s: %w", examples.DevTree, err)
		}
		return t, nil
	}
	return nil, nil
}

// demoChain picks a root-to-leaf chain of the tree: the top site and the first child at
// each level below it (central → province → district → commune in the four-level tree).
func demoChain(t *rooms.Tree) ([]string, error) {
	if t == nil {
		return nil, errors.New("no site tree")
	}
	chain := []string{t.Root().ID}
	for {
		kids := t.Children(chain[len(chain)-1])
		if len(kids) == 0 {
			return chain, nil
		}
		chain = append(chain, kids[0])
	}
}
