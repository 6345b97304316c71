package main

import "testing"

func TestLoadtestSites(t *testing.T) {
	sites, err := loadtestSites("../../deploy/examples/gia-lai.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(sites) != 258 || sites[0].Parent != "" {
		t.Fatalf("%d sites, first %+v: want 258, the root first", len(sites), sites[0])
	}
	seen := map[string]bool{}
	for _, s := range sites {
		if s.Parent != "" && !seen[s.Parent] {
			t.Fatalf("%s comes before its parent %s", s.ID, s.Parent)
		}
		seen[s.ID] = true
	}
	if _, err := loadtestSites("testdata/missing.yaml"); err == nil {
		t.Error("a missing file loaded")
	}
}
