package app_test

import (
	"cmp"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/testkit"
	"github.com/cau-project/cau/internal/testutil"
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

// startHop starts Cầu (startOn) over a fresh two-site store with hop scheduled from a
// minute ago in mode, logging as testutil.Logger; the app and the store close when the
// test ends.
func startHop(t *testing.T, mode rooms.Mode) (*app.App, *bolt.Store, rooms.Meeting) {
	t.Helper()
	store, tree := testkit.Store(t, testkit.SiteTW, testkit.SiteXA)
	m := hop(time.Now().Add(-time.Minute), mode)
	testkit.Schedule(t, store, tree, m)
	a := startOn(t, store, tree, testutil.Logger())
	t.Cleanup(func() { _ = a.Close() })
	return a, store, m
}

// join joins a meeting on a's signaling socket with the Go client (loopback), holding a
// join token for c: meeting hop, role participant and the site as name unless c says
// otherwise. The client logs as testutil.Logger and closes when the test ends.
func join(t *testing.T, a *app.App, c auth.Claims) *client.Client {
	t.Helper()
	c.Use = auth.UseJoin
	c.Meeting = cmp.Or(c.Meeting, "hop")
	c.Role = cmp.Or(c.Role, auth.RoleParticipant)
	c.Name = cmp.Or(c.Name, c.Site)
	tok, err := a.Keys().Sign(c, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.Dial(t.Context(), wsURL(a), tok, client.Options{Loopback: true, Logger: testutil.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// wsURL is a's signaling socket.
func wsURL(a *app.App) string { return "ws" + strings.TrimPrefix(a.URL(), "http") + "/ws" }
