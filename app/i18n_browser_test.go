package app_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/internal/testbrowser"
)

// vietnam is Asia/Ho_Chi_Minh: UTC+7 all year, no daylight saving.
var vietnam = time.FixedZone("ICT", 7*3600)

var weekdaysVI = [...]string{"Chủ nhật", "Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy"}

// expectText waits until the element matched by the CSS selector has exactly this text.
func expectText(t *testing.T, b *browser, sel, want string) {
	t.Helper()
	js := fmt.Sprintf(`(document.querySelector(%q)?.textContent ?? '').trim() === %q`, sel, want)
	if err := b.WaitFor(fmt.Sprintf("%s to read %q", sel, want), js, 10*time.Second); err != nil {
		got := testbrowser.Eval[string](t, b, fmt.Sprintf(`document.querySelector(%q)?.textContent ?? '(none)'`, sel))
		t.Errorf("%v; it reads %q", err, got)
	}
}

// expectLang checks <html lang>, and that the language switch offers the other language.
func expectLang(t *testing.T, b *browser, lang string) {
	t.Helper()
	offer := map[string]string{"vi": "English", "en": "Tiếng Việt"}[lang]
	if err := b.WaitFor("html lang="+lang, `document.documentElement.lang === '`+lang+`' &&
		document.querySelector('.lang-switch')?.textContent === '`+offer+`'`, 10*time.Second); err != nil {
		t.Errorf("%v (lang %q)", err, testbrowser.Eval[string](t, b, `document.documentElement.lang`))
	}
}

// TestBrowserPagesInVietnamese: the join page, the meeting-room kiosk and the console
// speak Vietnamese by default, with times in Vietnam time, and English on request (?lang=en,
// the switch, or a browser that asks for English; a kiosk stays Vietnamese). Screenshots of
// each go to the artifact directory.
func TestBrowserPagesInVietnamese(t *testing.T) {
	s := newStage(t, true)
	a, dir := s.app, s.dir
	// A Vietnamese official's browser, and one set to English.
	vi := s.browsers(testbrowser.Options{Lang: "vi-VN,vi", Width: 1366, Height: 768}, "vi")[0]
	en := s.browsers(testbrowser.Options{Lang: "en-US,en", Width: 1366, Height: 768}, "en")[0]

	// A kiosk with a meeting tomorrow at 08:00 Vietnam time, and a meeting of another
	// district in its test window now, for the console.
	var kioskEP struct {
		KioskPath string `json:"kiosk_path"`
	}
	apiCall(t, a, "POST", "/endpoints", map[string]any{"id": "room-c01", "name": "Phòng họp Khâm Đức",
		"site": "qnam-psn-c01", "kind": "room"}, &kioskEP)
	now := time.Now().In(vietnam)
	start := time.Date(now.Year(), now.Month(), now.Day()+1, 8, 0, 0, 0, vietnam)
	bookPhuocSon(t, a, "giao-ban-huyen", start, start.Add(2*time.Hour), "")
	soon := now.Add(20 * time.Minute).Truncate(time.Minute)
	apiCall(t, a, "POST", "/meetings", map[string]any{"id": "hop-tam-ky", "title": "Họp trực tuyến Tam Kỳ",
		"select": map[string]any{"root": "qnam-tk"}, "start": soon.Format(time.RFC3339),
		"end": soon.Add(time.Hour).Format(time.RFC3339)}, nil)

	t.Run("join", func(t *testing.T) {
		// The preview screen in Vietnamese.
		preview := strings.Replace(s.joinURL(a.Keys(), "hop-tinh", "central", "UBND tỉnh Quảng Nam", auth.RoleChair), "autojoin=1", "", 1)
		if err := vi.Open(preview, "the preview", `!document.getElementById('preview-screen').hidden`, 15*time.Second); err != nil {
			t.Fatal(err)
		}
		expectLang(t, vi, "vi")
		expectText(t, vi, "#join-form h1", "Tham gia cuộc họp")
		expectText(t, vi, "#join-button", "Vào họp")
		expectText(t, vi, "label[for=name-input]", "Họ và tên")
		expectText(t, vi, "#preview-site-row span", "Điểm cầu:")
		if err := vi.WaitFor("the camera in the preview and the device lists", `document.getElementById('preview-video').videoWidth > 0 &&
			document.getElementById('cam-select').options.length > 0`, 15*time.Second); err != nil {
			t.Error(err)
		}
		vi.Shot(t, dir, "join-preview")

		// In the meeting, as the chair: the controls and the floor panel.
		if err := vi.Click("join-button"); err != nil {
			t.Fatal(err)
		}
		if err := vi.WaitFor("joined", `window.cauState && window.cauState.joined`, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		// The English official joins the same meeting from a browser set to English.
		if err := en.Open(s.joinURL(a.Keys(), "hop-tinh", "qnam", "Sở TT&TT Quảng Nam", auth.RoleParticipant),
			"joined", `window.cauState && window.cauState.joined`, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		expectLang(t, en, "en")
		if err := vi.Click("floor-mode-training"); err != nil {
			t.Fatal(err)
		}
		expectText(t, vi, "#floor-mode", "Tập huấn")
		expectText(t, vi, "#floor-title", "Điều hành phát biểu")
		expectText(t, vi, "#floor-chair-title", "Điều hành của chủ trì")
		expectText(t, vi, "#mic-button .caption", "Micrô")
		expectText(t, vi, "#leave-button .caption", "Rời họp")
		expectText(t, vi, "#floor-self-status", "Điểm cầu chủ trì luôn được phát hình ảnh và âm thanh.")
		expectText(t, en, "#floor-mode", "Training")
		expectText(t, en, "#floor-button .pill-text", "Request the floor")
		if err := en.Click("floor-button"); err != nil {
			t.Fatal(err)
		}
		expectText(t, vi, "#floor-requests li .who", "Sở TT&TT Quảng Nam")
		expectText(t, vi, `#floor-requests li button[data-action="grant"]`, "Mời phát biểu")
		// The request's time, 24-hour in Vietnam time.
		at := testbrowser.Eval[string](t, vi, `document.querySelector('#floor-requests li .media').textContent`)
		if !validClock(at, "15:04", time.Minute) {
			t.Errorf("the request's time reads %q, want now in Vietnam time (%s)", at, time.Now().In(vietnam).Format("15:04"))
		}
		expectText(t, en, "#floor-button .pill-text", "Withdraw request")
		vi.Shot(t, dir, "join-meeting")
		en.Shot(t, dir, "join-meeting")
		if err := en.Click("leave-button"); err != nil {
			t.Fatal(err)
		}
		expectText(t, en, "#end-title", "You left the meeting")
		if err := vi.Click("leave-button"); err != nil {
			t.Fatal(err)
		}
		expectText(t, vi, "#end-title", "Bạn đã rời cuộc họp")
		expectText(t, vi, "#rejoin-button", "Vào lại cuộc họp")

		// English on request: ?lang=en on the Vietnamese browser.
		if err := vi.Open(preview+"&lang=en", "the preview", `!document.getElementById('preview-screen').hidden`, 15*time.Second); err != nil {
			t.Fatal(err)
		}
		expectLang(t, vi, "en")
		expectText(t, vi, "#join-button", "Join")
		vi.Shot(t, dir, "join-preview-en")
	})

	t.Run("kiosk", func(t *testing.T) {
		// A kiosk's browser is nobody's: it stays Vietnamese on an English browser.
		if err := en.Open(a.URL()+kioskEP.KioskPath, "the plan", `window.cauRoom && window.cauRoom.polls > 0`, 15*time.Second); err != nil {
			t.Fatal(err)
		}
		expectLang(t, en, "vi")
		expectText(t, en, ".kiosk-label", "Cuộc họp tiếp theo")
		expectText(t, en, "#next-title", "Giao ban huyện Phước Sơn")
		day := fmt.Sprintf("%s, %s", weekdaysVI[start.Weekday()], start.Format("02/01/2006"))
		expectText(t, en, "#next-time", day+" · 08:00 – 10:00 (giờ Việt Nam, UTC+7)")
		expectText(t, en, "#next-note", "Phòng họp sẽ tự vào kiểm tra kỹ thuật lúc 07:00.")
		if c := testbrowser.Eval[string](t, en, `document.getElementById('clock').textContent`); !validClock(c, "15:04", time.Minute) {
			t.Errorf("the kiosk's clock reads %q, want Vietnam time %s", c, time.Now().In(vietnam).Format("15:04"))
		}
		en.Shot(t, dir, "kiosk")

		if err := en.Open(a.URL()+kioskEP.KioskPath+"&lang=en", "the plan", `window.cauRoom && window.cauRoom.polls > 0`, 15*time.Second); err != nil {
			t.Fatal(err)
		}
		expectLang(t, en, "en")
		expectText(t, en, ".kiosk-label", "Next meeting")
		expectText(t, en, "#next-time", start.Format("Monday, 02/01/2006")+" · 08:00 – 10:00 (Vietnam time, UTC+7)")
		en.Shot(t, dir, "kiosk-en")
	})

	t.Run("console", func(t *testing.T) {
		tok, err := a.Keys().Sign(auth.Claims{Use: auth.UseAPI, Role: auth.RoleTechnician, Name: "Kỹ thuật viên"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			lang, query                         string
			heading, meetingTitle, joined, live string
		}{
			{"vi", "", "Chất lượng đường truyền", "Kiểm tra trước cuộc họp: Họp trực tuyến Tam Kỳ", "0/4 điểm cầu đã vào", "trực tuyến"},
			{"en", "lang=en&", "Link quality", "Pre-meeting check: Họp trực tuyến Tam Kỳ", "0 of 4 sites joined", "live"},
		} {
			if err := vi.Open(a.URL()+"/console?"+c.query+"token="+url.QueryEscape(tok), "the meetings list",
				`window.cauConsole && window.cauConsole.meetings === 1`, 15*time.Second); err != nil {
				t.Fatal(err)
			}
			expectLang(t, vi, c.lang)
			expectText(t, vi, ".bar .title", c.heading)
			expectText(t, vi, "#status", c.live)
			if err := vi.Run(10*time.Second, chromedp.Click(chromedp.CSS(`#meetings li`))); err != nil {
				t.Fatal(err)
			}
			expectText(t, vi, "#m-title", c.meetingTitle)
			summary := testbrowser.Eval[string](t, vi, `document.getElementById('m-summary').textContent`)
			if !strings.HasPrefix(summary, c.joined) {
				t.Errorf("%s: summary %q, want it to start with %q", c.lang, summary, c.joined)
			}
			// The meeting's start, in Vietnam time whatever the server's and browser's zones.
			if when := testbrowser.Eval[string](t, vi, `document.getElementById('m-when').textContent`); !strings.Contains(when, soon.Format("15:04")) {
				t.Errorf("%s: %q does not show the start %s (Vietnam time)", c.lang, when, soon.Format("15:04"))
			}
			if clock := testbrowser.Eval[string](t, vi, `document.getElementById('clock').textContent`); !validClock(clock, "15:04:05", 3*time.Second) {
				t.Errorf("%s: the console's clock reads %q, want Vietnam time %s", c.lang, clock, time.Now().In(vietnam).Format("15:04:05"))
			}
			vi.Shot(t, dir, "console-"+c.lang)
		}
	})

	t.Run("switch", func(t *testing.T) {
		// The switch on a Vietnamese page shows it in English and remembers it.
		landing := a.URL() + "/"
		if err := vi.Open(landing, "the landing page", `document.querySelector('.lang-switch')?.textContent !== ''`, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		expectLang(t, vi, "vi")
		expectText(t, vi, "main h1", "Cách tham gia cuộc họp")
		vi.Shot(t, dir, "landing")
		if err := vi.Run(10*time.Second, chromedp.Click(chromedp.CSS(`.lang-switch`))); err != nil {
			t.Fatal(err)
		}
		expectLang(t, vi, "en")
		expectText(t, vi, "main h1", "How to join a meeting")
		if err := vi.Open(landing, "the landing page again", `document.querySelector('.lang-switch')?.textContent !== ''`, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		expectLang(t, vi, "en") // remembered
		if err := vi.Run(10*time.Second, chromedp.Click(chromedp.CSS(`.lang-switch`))); err != nil {
			t.Fatal(err)
		}
		expectLang(t, vi, "vi")
	})
}

// validClock reports whether text is the time now in Vietnam (in layout), give or take slack.
func validClock(text, layout string, slack time.Duration) bool {
	now := time.Now().In(vietnam)
	for d := -slack; d <= slack; d += time.Second {
		if now.Add(d).Format(layout) == strings.TrimSpace(text) {
			return true
		}
	}
	return false
}
