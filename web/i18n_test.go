package web

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The pages' texts live in one message catalogue per language (static/i18n/*.json); these
// tests keep the catalogues complete, consistent with each other and with the pages.

// catalogue reads static/i18n/<lang>.json.
func catalogue(t *testing.T, lang string) map[string]string {
	t.Helper()
	a := assets["i18n/"+lang+".json"]
	if a == nil {
		t.Fatalf("no catalogue for %s", lang)
	}
	var m map[string]string
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("catalogue %s: %v", lang, err)
	}
	return m
}

var placeholder = regexp.MustCompile(`\{\w+\}`)

// Both languages have the same keys, no empty text, and the same placeholders per key.
func TestCataloguesMatch(t *testing.T) {
	vi, en := catalogue(t, "vi"), catalogue(t, "en")
	for k, v := range vi {
		e, ok := en[k]
		if !ok {
			t.Errorf("%q is in vi.json, not in en.json", k)
			continue
		}
		if strings.TrimSpace(v) == "" || strings.TrimSpace(e) == "" {
			t.Errorf("%q is empty in a catalogue", k)
		}
		pv, pe := placeholder.FindAllString(v, -1), placeholder.FindAllString(e, -1)
		slices.Sort(pv)
		slices.Sort(pe)
		if !slices.Equal(pv, pe) {
			t.Errorf("%q: placeholders %v in vi, %v in en", k, pv, pe)
		}
	}
	for k := range en {
		if _, ok := vi[k]; !ok {
			t.Errorf("%q is in en.json, not in vi.json", k)
		}
	}
}

// The Vietnamese catalogue is Vietnamese: no English sentence left in it, and the
// official terms of government meetings where they belong.
func TestVietnameseCatalogue(t *testing.T) {
	vi := catalogue(t, "vi")
	english := regexp.MustCompile(`(?i)\b(the|and|your|you|is|are|with|from|please|meeting|site|chair|floor)\b`)
	for k, v := range vi {
		if k == "lang.switch" { // the switch offers English in English
			continue
		}
		if m := english.FindString(placeholder.ReplaceAllString(v, "")); m != "" {
			t.Errorf("vi %q = %q: English word %q", k, v, m)
		}
	}
	for k, want := range map[string]string{
		"join.site": "Điểm cầu", "window.chair": "Chủ trì", "floor.request": "Xin phát biểu",
		"console.rollcall": "Điểm danh", "floor.speakers": "Đang phát biểu", "floor.end_meeting": "Kết thúc cuộc họp",
		"weekday.4": "Thứ Năm", "room.when": "giờ Việt Nam",
	} {
		if !strings.Contains(vi[k], want) {
			t.Errorf("vi %q = %q, want it to say %q", k, vi[k], want)
		}
	}
}

// Every key a page or module names exists: the HTML's data-i18n* attributes and the
// modules' literal keys (t('floor.grant'), labels passed on as 'floor.grant_label'), and
// every page starts in Vietnamese.
func TestPagesUseTheCatalogue(t *testing.T) {
	vi := catalogue(t, "vi")
	prefixes := map[string]bool{}
	for k := range vi {
		prefixes[k[:strings.IndexByte(k, '.')]] = true
	}
	htmlKey := regexp.MustCompile(`data-i18n(?:-[a-z-]+)?="([^"]+)"`)
	jsKey := regexp.MustCompile(`'([a-z_]+\.[a-z0-9_.]+)'`)
	for name, a := range assets {
		body := string(a.body)
		switch {
		case strings.HasSuffix(name, ".html"):
			if !strings.Contains(body, `<html lang="vi"`) {
				t.Errorf("%s: not <html lang=\"vi\">", name)
			}
			if !strings.Contains(body, `src="/static/`) || !strings.Contains(body, `class="lang-switch"`) {
				t.Errorf("%s: no module or no language switch", name)
			}
			for _, m := range htmlKey.FindAllStringSubmatch(body, -1) {
				if _, ok := vi[m[1]]; !ok {
					t.Errorf("%s: data-i18n key %q is not in the catalogue", name, m[1])
				}
			}
			// Text between tags is the catalogue's to fill; only the brand, code and
			// symbols stay in the HTML.
			for _, m := range regexp.MustCompile(`>([^<]*\p{L}[^<]*)<`).FindAllStringSubmatch(body, -1) {
				text := strings.TrimSpace(m[1])
				if text != "Cầu" && !strings.HasPrefix(text, "https://") && !strings.HasPrefix(text, "cau token") &&
					!strings.HasPrefix(text, "/join/") && !strings.HasPrefix(text, "?token") && !strings.Contains(m[0], "data-i18n") {
					if !regexp.MustCompile(`data-i18n[^>]*>` + regexp.QuoteMeta(m[1]) + `<`).MatchString(body) {
						t.Errorf("%s: text %q outside the catalogue", name, text)
					}
				}
			}
		case strings.HasSuffix(name, ".js"):
			for _, m := range jsKey.FindAllStringSubmatch(body, -1) {
				k := m[1]
				if !prefixes[k[:strings.IndexByte(k, '.')]] || strings.HasSuffix(k, ".js") || strings.HasSuffix(k, ".json") {
					continue // a file name, a CSS selector, not a message
				}
				if _, ok := vi[k]; !ok {
					t.Errorf("%s: message %q is not in the catalogue", name, k)
				}
			}
		}
	}
}
