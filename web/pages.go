package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
)

// The pages (static/*.html) are html/template sources that share their <head>, the
// console pages' error banner and the video tile through the partials below; they are
// rendered once, at start-up, and then served like any other asset (so /static/join.html
// is the rendered page too). The partials themselves are not served.
//
//go:embed partials
var partialsFS embed.FS

// pageHead is the argument of the "head" partial.
type pageHead struct {
	TitleKey string   // the i18n key of the title (i18n.js replaces the text)
	Title    string   // the Vietnamese title, shown before the catalogue loads
	Module   string   // the page's module under /static/
	Styles   []string // its stylesheets under /static/, in order
	// Kiosk pages follow the language the room is configured for, never the browser's
	// (i18n.js reads data-browser-lang).
	Kiosk bool
}

// pageHeadOf makes a page's head (the templates' "page"); kioskHeadOf a kiosk's ("kioskPage").
func pageHeadOf(titleKey, title, module string, styles ...string) pageHead {
	return pageHead{TitleKey: titleKey, Title: title, Module: module, Styles: styles}
}

func kioskHeadOf(titleKey, title, module string, styles ...string) pageHead {
	h := pageHeadOf(titleKey, title, module, styles...)
	h.Kiosk = true
	return h
}

// partials is parsed once; each page is parsed into a clone of it.
var partials = template.Must(template.New("partials").
	Funcs(template.FuncMap{"page": pageHeadOf, "kioskPage": kioskHeadOf}).
	ParseFS(partialsFS, "partials/*.html"))

// renderPage executes the page source src (named name) with the partials.
func renderPage(name string, src []byte) ([]byte, error) {
	t, err := partials.Clone()
	if err != nil {
		return nil, fmt.Errorf("web: page %s: %w", name, err)
	}
	if t, err = t.New(name).Parse(string(src)); err != nil {
		return nil, fmt.Errorf("web: page %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, nil); err != nil {
		return nil, fmt.Errorf("web: page %s: %w", name, err)
	}
	return b.Bytes(), nil
}
