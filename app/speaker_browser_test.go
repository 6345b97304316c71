package app_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/ids"
	"github.com/cau-project/cau/internal/testbrowser"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/sfu/speaker"
)

// A commune's room kiosk and an official's join page (headless Chromium, fake camera and
// microphone: the microphone is a beep) and a pion endpoint that talks on cue meet with a
// Last-N of 2 videos. Both pages highlight the dominant speaker the bridge chose, first
// the official's beeping microphone, then the pion endpoint once the official mutes and it
// talks; both mark the site whose camera the bridge holds back, as the server told it;
// the official pins the kiosk's site and its page shows the pin, which the bridge applies
// to the official's link.
func TestBrowserDominantSpeaker(t *testing.T) {
	s := newStageWith(t, true, func(c *app.Config) { c.Speaker = speaker.Params{VideoN: 2} })
	a, dir := s.app, s.dir
	const kioskSite, officialSite, talkerSite = "qnam-psn-c01", "qnam-psn-c02", "qnam-psn-c03"
	var created struct {
		KioskPath string `json:"kiosk_path"`
	}
	apiCall(t, a, "POST", "/endpoints", map[string]any{"id": "room-spk", "name": "Phòng họp Khâm Đức", "site": kioskSite, "kind": "room"}, &created)
	t0 := time.Now()
	m := bookPhuocSon(t, a, "speaker-test", t0.Add(2*time.Second), t0.Add(10*time.Minute), "1m")

	bs := s.browsers(testbrowser.Options{}, "kiosk", "official")
	kiosk, official := bs[0], bs[1]
	if err := kiosk.Run(30*time.Second, chromedp.Navigate(a.URL()+created.KioskPath+"&poll=1")); err != nil {
		t.Fatalf("open the kiosk page: %v", err)
	}
	if err := kiosk.WaitFor("the kiosk joined", `window.cauRoom && window.cauRoom.joined`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// The hall is quiet: only the official's microphone beeps at first.
	testbrowser.Eval[bool](t, kiosk, `(() => { document.getElementById('self-video').srcObject.getAudioTracks()
		.forEach((tr) => { tr.enabled = false; }); return true; })()`)
	if err := official.Open(s.joinURL(a.Keys(), m.ID, officialSite, "Cán bộ xã Phước Xuân", auth.RoleParticipant)+"&lang=vi", "join",
		`window.cauState && window.cauState.joined`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	tok, err := a.Keys().Sign(auth.Claims{Use: auth.UseJoin, Meeting: m.ID, Site: talkerSite, Name: "Xã Phước Công", Role: auth.RoleParticipant}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	talker, err := client.Dial(context.Background(), wsURL(a), tok, client.Options{Loopback: true})
	if err != nil {
		t.Fatal(err)
	}
	defer talker.Close()
	synth, err := talker.PublishWith(context.Background(), client.PublishOptions{Levels: true})
	if err != nil {
		t.Fatal(err)
	}
	kioskID := testbrowser.Eval[string](t, kiosk, `window.cauRoom.selfId`)
	officialID := testbrowser.Eval[string](t, official, `window.cauState.selfId`)

	// What a page shows: the dominant tile, the held-back tiles, the summary line, and
	// whether its self view is highlighted.
	type shown struct {
		Dominant string   `json:"dominant"`
		Held     []string `json:"held"`
		Pinned   []string `json:"pinned"`
		Status   string   `json:"status"`
		Self     bool     `json:"self"`
	}
	const read = `(() => {
		const ids = (sel) => [...document.querySelectorAll(sel)].map((e) => e.dataset.participant).sort();
		return { dominant: ids('.tile.dominant')[0] || '', held: ids('.tile.lastn-out'), pinned: ids('.tile.pinned'),
			status: document.getElementById('speaker-status').textContent,
			self: document.getElementById('self-view').classList.contains('dominant') };
	})()`
	page := func(b *browser) shown { return testbrowser.Eval[shown](t, b, read) }
	// Held back as the server says: every publisher with a camera outside Last-N.
	heldWant := func(self string) []string {
		st, _ := talker.Speaker()
		var out []string
		for _, id := range []string{kioskID, officialID, talker.Self.ID} {
			if id != self && !slices.Contains(st.LastN, id) {
				out = append(out, id)
			}
		}
		slices.Sort(out)
		return out
	}

	// The official's beep makes it the dominant speaker: the kiosk highlights its tile and
	// names it, the official's page its own view.
	waitUntil(t, "the pages show the official speaking", 30*time.Second, func() string {
		k, o := page(kiosk), page(official)
		if k.Dominant != officialID || !strings.Contains(k.Status, "Đang nói: Cán bộ xã Phước Xuân") {
			return fmt.Sprintf("kiosk shows %+v, want %s speaking", k, officialID)
		}
		if !o.Self || !strings.Contains(o.Status, "Đang nói: Cán bộ xã Phước Xuân") {
			return fmt.Sprintf("the official's page shows %+v, want itself speaking", o)
		}
		if !strings.Contains(k.Status, "Đang truyền hình 2 điểm cầu") {
			return fmt.Sprintf("kiosk status %q does not count the 2 sites of Last-N", k.Status)
		}
		if want := heldWant(kioskID); !slices.Equal(k.Held, want) {
			return fmt.Sprintf("kiosk marks %v held back, the server holds back %v", k.Held, want)
		}
		return ""
	})
	kiosk.Shot(t, dir, "official-speaks")

	// The official mutes; the pion endpoint talks: both pages move the highlight to it.
	if err := official.Click("mic-button"); err != nil {
		t.Fatal(err)
	}
	synth.SetLoudness(100)
	start := time.Now()
	waitUntil(t, "the pages show the talker speaking", 20*time.Second, func() string {
		k, o := page(kiosk), page(official)
		if k.Dominant != talker.Self.ID || o.Dominant != talker.Self.ID || o.Self {
			return fmt.Sprintf("kiosk shows %+v, the official's page %+v, want %s speaking", k, o, talker.Self.ID)
		}
		if !strings.Contains(o.Status, "Đang nói: Xã Phước Công") {
			return fmt.Sprintf("the official's page says %q", o.Status)
		}
		if want := heldWant(officialID); !slices.Equal(o.Held, want) {
			return fmt.Sprintf("the official's page marks %v held back, the server holds back %v", o.Held, want)
		}
		return ""
	})
	t.Logf("the pages highlighted the new talker %v after it started", time.Since(start).Round(10*time.Millisecond))
	official.Shot(t, dir, "talker-speaks")

	// The official pins the kiosk's site: its page marks the tile and names the pin; the
	// bridge gives the kiosk's camera first call on the official's link.
	testbrowser.Eval[bool](t, official, `(() => { document.querySelector('.tile[data-participant="`+kioskID+`"] .pin-button').click(); return true; })()`)
	waitUntil(t, "the official's page shows the pin", 10*time.Second, func() string {
		o := page(official)
		if !slices.Equal(o.Pinned, []string{kioskID}) || !strings.Contains(o.Status, "Đã ghim: "+kioskSite) {
			return fmt.Sprintf("the official's page shows %+v", o)
		}
		return ""
	})
	peer := a.Signaling().PeerOf(m.ID, officialID)
	waitUntil(t, "the bridge pins the kiosk on the official's link", 10*time.Second, func() string {
		got := a.Signaling().Local().Agent().PinnedFor(peer)
		if !slices.ContainsFunc(got, func(k ids.StreamKey) bool {
			return string(k.Participant) == kioskID && k.Source == ids.SourceCamera
		}) {
			return fmt.Sprintf("pinned on the official's link: %v", got)
		}
		return ""
	})
	if k := page(kiosk); len(k.Pinned) != 0 {
		t.Errorf("the kiosk shows the official's own pin: %+v", k)
	}
	official.Shot(t, dir, "pinned")

	// The technicians' console: the official's site shows its link's bandwidth estimate
	// and its video streams by layer, in the tree and in the site's detail (bridge stats →
	// monitor → console), and /metrics exports both.
	tech, err := a.Keys().Sign(auth.Claims{Use: auth.UseAPI, Role: auth.RoleTechnician, Name: "Kỹ thuật", Site: "qnam"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	console := kiosk.Tab(t, "console")
	if err := console.Run(30*time.Second, chromedp.Navigate(a.URL()+"/console?lang=vi&token="+tech+"#"+officialSite)); err != nil {
		t.Fatal(err)
	}
	row := `document.querySelector('.row[data-id="` + officialSite + `"] .fig')`
	if err := console.WaitFor("the console shows the official's estimate and layers", `window.cauConsole && `+row+` !== null &&
		/ước lượng \d/.test(`+row+`.textContent) && /hình cao\/vừa\/thấp\/dừng \d+\/\d+\/\d+\/\d+/.test(`+row+`.textContent) &&
		window.cauConsole.detailSite === '`+officialSite+`' &&
		/băng thông ước lượng \d/.test(document.querySelector('#d-endpoints .ep-adapt').textContent) &&
		document.querySelector('#d-endpoints .ep-adapt').textContent.includes('`+kioskID+`.camera: ')`, 30*time.Second); err != nil {
		t.Error(err)
	}
	t.Logf("console: %q; detail: %q", testbrowser.Eval[string](t, console, row+`.textContent`),
		testbrowser.Eval[string](t, console, `document.querySelector('#d-endpoints .ep-adapt').textContent`))
	console.Shot(t, dir, "console")
	metrics := testutil.Scrape(t, a.URL())
	for _, want := range []string{
		`cau_site_bandwidth_estimate_bits_per_second{level="commune",site="` + officialSite + `"}`,
		`cau_site_video_streams{layer="paused",level="commune",site="` + officialSite + `"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
