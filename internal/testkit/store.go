// Package testkit holds the set-up the packages' integration tests share: a real
// embedded store with a site tree and a scheduled meeting in it. It builds on the real
// packages (rooms, its bbolt store); no fakes. It imports no server package (app,
// signaling, monitor…), so any package's tests may use it without an import cycle.
package testkit

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/rooms/store/bolt"
)

// The sites most tests meet in: the chair's central site and two communes under it.
var (
	SiteTW = rooms.Site{ID: "tw", Name: "Trung ương", Level: rooms.LevelCentral}
	SiteXA = rooms.Site{ID: "xa", Name: "Xã Ia Grai", Level: rooms.LevelCommune, Parent: "tw"}
	SiteXB = rooms.Site{ID: "xb", Name: "Xã Ia Dơk", Level: rooms.LevelCommune, Parent: "tw"}
)

// Store opens a fresh bbolt store in t's temporary directory, closed when the test and
// its cleanups registered later have finished. With sites it also builds their tree and
// saves it, as `cau sites import` does; without, the tree is nil.
func Store(t testing.TB, sites ...rooms.Site) (*bolt.Store, *rooms.Tree) {
	t.Helper()
	store, tree := StoreAt(t, filepath.Join(t.TempDir(), "cau.db"), sites...)
	t.Cleanup(func() { _ = store.Close() })
	return store, tree
}

// StoreAt is Store at path, left open for the caller to close (tests that close and
// reopen a store to see what a stop left on disk).
func StoreAt(t testing.TB, path string, sites ...rooms.Site) (*bolt.Store, *rooms.Tree) {
	t.Helper()
	store, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(sites) == 0 {
		return store, nil
	}
	tree, err := rooms.NewTree(sites)
	if err == nil {
		err = store.SaveSites(context.Background(), tree.Sites())
	}
	if err != nil {
		_ = store.Close()
		t.Fatal(err)
	}
	return store, tree
}

// Tree builds the tree of sites (parents first, as rooms.NewTree takes them) for a test
// that needs no store; an invalid tree fails the test.
func Tree(t testing.TB, sites ...rooms.Site) *rooms.Tree {
	t.Helper()
	tree, err := rooms.NewTree(sites)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// Schedule saves m through the scheduler, as the REST API does.
func Schedule(t testing.TB, store rooms.ScheduleStore, tree *rooms.Tree, m rooms.Meeting) {
	t.Helper()
	if _, err := rooms.NewScheduler(store, tree).Schedule(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// Hop is the meeting "hop" ("Họp"), chaired by tw over sites, running from a minute ago
// to an hour from now: open to join at once.
func Hop(sites ...string) rooms.Meeting {
	now := time.Now()
	return rooms.Meeting{ID: "hop", Title: "Họp", ChairSite: "tw", Sites: sites,
		Start: now.Add(-time.Minute), End: now.Add(time.Hour)}
}
