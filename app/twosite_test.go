package app_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/internal/testkit"
	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/rooms/store/bolt"
)

// twoSiteStore opens a bolt store at path holding the smallest tree a meeting needs: the
// chair's central site "tw" and one commune "xa". The caller closes the store (some tests
// close and reopen it to see what a stop left on disk).
func twoSiteStore(t *testing.T, path string) (*bolt.Store, *rooms.Tree) {
	t.Helper()
	return testkit.StoreAt(t, path, testkit.SiteTW, testkit.SiteXA)
}

// hop is the meeting of these tests: chaired by tw, with xa, running from start to an
// hour from now.
func hop(start time.Time, mode rooms.Mode) rooms.Meeting {
	return rooms.Meeting{ID: "hop", Title: "Họp", ChairSite: "tw", Sites: []string{"tw", "xa"}, Mode: mode,
		Start: start, End: time.Now().Add(time.Hour)}
}

// startOn starts Cầu in dev mode on loopback over store and tree, as `cau serve` runs at
// site tw. The caller closes it.
func startOn(t *testing.T, store *bolt.Store, tree *rooms.Tree, log *slog.Logger) *app.App {
	t.Helper()
	a, err := app.Start(t.Context(), app.Config{HTTPAddr: "127.0.0.1:0", ICETCPPort: -1, Dev: true, Logger: log,
		Store: store, Tree: tree, Site: "tw", Ancestry: tree.Ancestors})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// wsURL is a's signaling socket.
func wsURL(a *app.App) string { return "ws" + strings.TrimPrefix(a.URL(), "http") + "/ws" }
