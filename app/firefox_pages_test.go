package app_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/testbrowser"
	"github.com/cau-project/cau/internal/testmedia"
)

// TestBrowserFirefoxKioskConsoleWatch: the pages beyond the join page work in Firefox
// (ESR, headless, fake devices) too. A meeting-room kiosk joins its scheduled meeting by
// itself and is seen and received by another participant; the console shows the tree and
// a site's detail; the WHEP player plays a WHIP encoder.
func TestBrowserFirefoxKioskConsoleWatch(t *testing.T) {
	s := newStage(t, true)
	firefox := testbrowser.FirefoxPath(t)
	testmedia.Need(t)
	a := s.app
	ff, err := testbrowser.StartFirefox(t, firefox, nil, s.log.Printf)
	if err != nil {
		t.Fatal(err)
	}
	shot := func(label string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if png, err := ff.Screenshot(ctx); err == nil {
			_ = os.WriteFile(filepath.Join(s.dir, "firefox-"+label+".png"), png, 0o644)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			shot("failed")
		}
	})
	open := func(url string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		if err := ff.Navigate(ctx, url); err != nil {
			t.Fatalf("firefox: open %s: %v", url, err)
		}
	}
	wait := func(what, predicate string, timeout time.Duration) {
		t.Helper()
		if err := ff.WaitFor(t.Context(), what, predicate, timeout); err != nil {
			t.Fatal(err)
		}
	}

	// The kiosk: its room's meeting opens its test window a second from now.
	var created struct {
		KioskPath string `json:"kiosk_path"`
	}
	apiCall(t, a, "POST", "/endpoints", map[string]any{"id": "room-c01", "name": "Phòng họp Khâm Đức", "site": "qnam-psn-c01", "kind": "room"}, &created)
	now := time.Now()
	m := bookPhuocSon(t, a, "ff-pages", now.Add(3*time.Second), now.Add(10*time.Minute), "2s")
	open(a.URL() + created.KioskPath + "&poll=1")
	wait("the kiosk joined", `window.cauRoom && window.cauRoom.joined`, 30*time.Second)
	observer := districtChair(t, a, m.ID)
	var kioskID string
	if err := ff.Eval(t.Context(), `window.cauRoom.selfId`, &kioskID); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the observer receives the Firefox kiosk's camera", 20*time.Second, func() string {
		if st := observer.Stream(kioskID+".camera", "video"); st == nil || st.Packets.Load() < 20 {
			return "no video from the kiosk yet"
		}
		return ""
	})
	wait("the kiosk shows the observer", `window.cauRoom.participants.includes('`+observer.Self.ID+`') &&
		!document.getElementById('meeting-screen').hidden`, 10*time.Second)
	shot("kiosk")

	// The console, on the district's detail (its observer is connected).
	tech, err := a.Keys().Sign(auth.Claims{Use: auth.UseAPI, Role: auth.RoleTechnician, Name: "Kỹ thuật", Site: "qnam"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	open(a.URL() + "/console?token=" + tech + "#qnam-psn")
	wait("the console's tree and detail", `window.cauConsole && window.cauConsole.updates >= 1 &&
		document.querySelector('.row[data-id="qnam-psn-c01"]') !== null && window.cauConsole.detailSite === 'qnam-psn' &&
		document.querySelectorAll('#d-endpoints .ep-name').length >= 1`, 20*time.Second)
	var href string
	if err := ff.Eval(t.Context(), `location.href`, &href); err != nil || strings.Contains(href, "token") {
		t.Errorf("the console's address %q (%v): the token must leave it", href, err)
	}
	shot("console")

	// The WHEP player, on an encoder at a commune.
	whipPublish(t, a, m.ID, "qnam-psn-c02", "Bộ mã hoá xã")
	watcher, err := a.Keys().Sign(auth.Claims{Use: auth.UseJoin, Meeting: m.ID, Site: "qnam-psn", Name: "Màn hình", Role: auth.RoleParticipant}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	open(a.URL() + "/watch/" + m.ID + "?site=qnam-psn-c02&token=" + watcher)
	wait("the player plays", `window.cauWatch && window.cauWatch.state === 'playing' &&
		document.getElementById('player').videoWidth > 0 && document.getElementById('player').currentTime > 1`, 30*time.Second)
	shot("watch")
}
