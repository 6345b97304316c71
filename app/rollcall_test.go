package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/rooms/store/bolt"
)

// TestRollCallRecordsGrades runs a scheduled meeting: the roll call gets the site's
// connection and, from the link monitor, its grade.
func TestRollCallRecordsGrades(t *testing.T) {
	ctx := context.Background()
	store, err := bolt.Open(filepath.Join(t.TempDir(), "cau.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	tree, err := rooms.NewTree([]rooms.Site{
		{ID: "tw", Name: "Trung ương", Level: "central"},
		{ID: "xa", Name: "Xã Ia Grai", Level: "commune", Parent: "tw"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SaveSites(ctx, tree.Sites()); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := rooms.NewScheduler(store, tree).Schedule(ctx, rooms.Meeting{ID: "hop", Title: "Họp", ChairSite: "tw",
		Sites: []string{"tw", "xa"}, Start: now.Add(-time.Minute), End: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	a, err := app.Start(t.Context(), app.Config{HTTPAddr: "127.0.0.1:0", ICETCPPort: -1, Dev: true, Logger: log,
		Store: store, Tree: tree, Site: "tw", Ancestry: tree.Ancestors})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ws := "ws" + strings.TrimPrefix(a.URL(), "http") + "/ws"
	var clients []*client.Client
	for _, site := range []string{"tw", "xa"} {
		tok, _ := a.Keys().Sign(auth.Claims{Use: auth.UseJoin, Meeting: "hop", Site: site, Name: site, Role: auth.RoleParticipant}, time.Hour)
		c, err := client.Dial(ctx, ws, tok, client.Options{Loopback: true, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Publish(ctx); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	deadline := time.Now().Add(20 * time.Second)
	var kinds []string
	for time.Now().Before(deadline) {
		evs, err := store.Attendance(ctx, "hop")
		if err != nil {
			t.Fatal(err)
		}
		kinds = kinds[:0]
		for _, e := range evs {
			if e.Site == "xa" {
				kinds = append(kinds, fmt.Sprintf("%s%s", e.Kind, e.Grade))
			}
		}
		if len(kinds) >= 2 && kinds[0] == "connected" && kinds[1] == "gradegood" {
			recs, err := rooms.BuildRollCall(rooms.Meeting{ID: "hop", Sites: []string{"tw", "xa"}, Start: now.Add(-time.Minute),
				End: now.Add(time.Hour)}, evs, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Site == "xa" && (r.LastGrade != rooms.GradeGood || !r.Online) {
					t.Fatalf("roll call for xa: %+v, want online and good", r)
				}
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("xa's attendance events %v, want connected then a good grade", kinds)
}
