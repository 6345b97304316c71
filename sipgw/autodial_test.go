package sipgw_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/internal/testkit"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/rooms/store/bolt"
)

// TestAutoDial: a room endpoint of the registry has a SIP URI (baresip, auto-answering);
// the gateway calls it when its meeting's test window opens, not before, and it joins
// as that endpoint (the roll call shows its site connected). When the room hangs up,
// the gateway calls it again; at the meeting's end it hangs up.
func TestAutoDial(t *testing.T) {
	needBaresip(t)
	ctx := t.Context()
	store, tree := testkit.Store(t, rooms.Site{ID: "tinh", Name: "Tỉnh", Level: rooms.LevelProvince},
		rooms.Site{ID: "xa-a", Name: "Xã A", Level: rooms.LevelCommune, Parent: "tinh"})
	port := testutil.FreePort(t)
	room := startBaresipAt(t, "Phòng họp xã A", fmt.Sprintf("127.0.0.1:%d", port))
	ep := rooms.Endpoint{ID: "phong-hop-xa-a", Name: "Phòng họp xã A", Site: "xa-a", Kind: rooms.KindRoom,
		SIPURI: fmt.Sprintf("sip:room@127.0.0.1:%d", port)}
	if err := store.PutEndpoint(ctx, ep); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	m := rooms.Meeting{ID: "hop-tu-dong", Title: "Họp", ChairSite: "tinh", Sites: []string{"tinh", "xa-a"},
		Start: now.Add(5 * time.Second), End: now.Add(30 * time.Second), TestWindow: 3 * time.Second}
	if err := store.CreateMeeting(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	a, _ := startConfig(t, app.Config{Store: store, Tree: tree, Site: "tinh", Ancestry: tree.Ancestors,
		SIP: app.SIPConfig{Addr: "127.0.0.1:0", DialPoll: 200 * time.Millisecond, DialBackoff: 500 * time.Millisecond}})

	opens := m.Start.Add(-m.TestWindow)
	time.Sleep(time.Until(opens.Add(-500 * time.Millisecond)))
	if room.calls() != 0 || a.SIP().Calls() != 0 {
		t.Fatalf("the room was called before its meeting's test window opened")
	}
	testutil.Eventually(t, 20*time.Second, func() string {
		if !room.established() || a.SIP().Calls() != 1 {
			return "the gateway has not called the room"
		}
		return ""
	})
	t.Logf("test window open → the room's call established %v later", time.Since(opens))
	testutil.Eventually(t, 10*time.Second, func() string {
		events, err := store.Attendance(ctx, m.ID)
		if err != nil {
			return err.Error()
		}
		for _, e := range events {
			if e.Endpoint == ep.ID && e.Site == "xa-a" && e.Kind == rooms.EventConnected {
				return ""
			}
		}
		return fmt.Sprintf("the roll call has no connection of %s: %+v", ep.ID, events)
	})

	room.command("/hangup")
	testutil.Eventually(t, 20*time.Second, func() string {
		if n := room.calls(); n < 2 {
			return "the gateway has not called the room again after it hung up"
		}
		return ""
	})

	// The end: brought forward to now that the checks in the meeting are done (the
	// schedule above leaves them room on a loaded box).
	m.End = endSoon(t, store, m.ID)
	time.Sleep(time.Until(m.End))
	noCalls(t, a) // the meeting has ended: the dialer hangs up
	if metrics := scrape(t, a); !containsAll(metrics, `cau_sip_dials_total{outcome="answered"}`) {
		t.Errorf("dials not counted:\n%s", grep(metrics, "cau_sip_dials_total"))
	}
}

// endSoon moves meeting id's end to a second from now (not before its start) and
// returns it. The dialer reads the store each poll, as it would read a meeting that
// reached its booked end.
func endSoon(t *testing.T, store *bolt.Store, id string) time.Time {
	t.Helper()
	booked, err := store.Meeting(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	booked.End = time.Now().Add(time.Second)
	if !booked.End.After(booked.Start) {
		booked.End = booked.Start.Add(time.Second)
	}
	if err := store.UpdateMeeting(t.Context(), booked, nil); err != nil {
		t.Fatal(err)
	}
	return booked.End
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
