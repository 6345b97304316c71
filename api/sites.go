package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/cau-project/cau/internal/httpapi"
	"github.com/cau-project/cau/rooms"
)

// siteView is s as the API shows it.
func siteView(t *rooms.Tree, s rooms.Site) httpapi.SiteView {
	return httpapi.SiteView{Site: httpapi.Site{ID: s.ID, Name: s.Name, Level: string(s.Level), Parent: s.Parent},
		Depth: t.Depth(s.ID)}
}

// siteNode is one site of the nested view (GET /sites?view=tree).
type siteNode struct {
	ID       string      `json:"id"`
	Name     string      `json:"name"`
	Level    rooms.Level `json:"level"`
	Children []*siteNode `json:"children,omitempty"`
}

func summarise(t *rooms.Tree) httpapi.SiteSummary {
	out := httpapi.SiteSummary{Levels: map[string]int{}}
	if t == nil {
		return out
	}
	out.Count, out.Root = t.Len(), t.Root().ID
	for l, n := range t.CountByLevel() {
		out.Levels[string(l)] = n
	}
	return out
}

// listSites: GET /api/v1/sites — every site in preorder, or ?view=tree nested.
func (a *API) listSites(w http.ResponseWriter, r *http.Request, _ *principal) {
	t := a.Tree()
	switch view := r.URL.Query().Get("view"); view {
	case "", "list":
		out := httpapi.SiteList{SiteSummary: summarise(t), Sites: []httpapi.SiteView{}}
		if t != nil {
			for _, s := range t.Sites() {
				out.Sites = append(out.Sites, siteView(t, s))
			}
		}
		writeJSON(w, http.StatusOK, out)
	case "tree":
		out := struct {
			httpapi.SiteSummary
			Tree *siteNode `json:"tree"`
		}{SiteSummary: summarise(t)}
		if t != nil {
			out.Tree = nest(t)
		}
		writeJSON(w, http.StatusOK, out)
	default:
		a.fail(w, r, badRequest("view %q: want list or tree", view))
	}
}

// nest builds the nested view without recursion: preorder puts parents first.
func nest(t *rooms.Tree) *siteNode {
	nodes := make(map[string]*siteNode, t.Len())
	var root *siteNode
	for _, s := range t.Sites() {
		n := &siteNode{ID: s.ID, Name: s.Name, Level: s.Level}
		nodes[s.ID] = n
		if p, ok := nodes[s.Parent]; ok && s.Parent != "" {
			p.Children = append(p.Children, n)
		} else {
			root = n
		}
	}
	return root
}

// getSite: GET /api/v1/sites/{id} — a site with its place in the tree.
func (a *API) getSite(w http.ResponseWriter, r *http.Request, _ *principal) {
	t := a.Tree()
	id := r.PathValue("id")
	if t == nil {
		a.fail(w, r, newError(http.StatusNotFound, httpapi.CodeNotFound, "site %q: %v", id, errNoTree))
		return
	}
	s, ok := t.Site(id)
	if !ok {
		a.fail(w, r, newError(http.StatusNotFound, httpapi.CodeNotFound, "no site %q", id))
		return
	}
	writeJSON(w, http.StatusOK, struct {
		httpapi.SiteView
		Ancestors   []string `json:"ancestors"`
		Children    []string `json:"children"`
		SubtreeSize int      `json:"subtree_size"`
	}{siteView(t, s), nonNil(t.Ancestors(id)), nonNil(t.Children(id)), len(t.Subtree(id))})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// replaceSites: PUT /api/v1/sites — the whole tree, {"sites":[…]}.
func (a *API) replaceSites(w http.ResponseWriter, r *http.Request, p *principal) {
	var body struct {
		Sites []rooms.Site `json:"sites"`
	}
	if err := decodeJSON(w, r, MaxTreeBodyBytes, &body); err != nil {
		a.fail(w, r, err)
		return
	}
	ctx, audited := a.auditWith(r, p, "replace_sites", "sites", fmt.Sprintf("%d sites", len(body.Sites)))
	t, err := a.changeTree(ctx, func([]rooms.Site) ([]rooms.Site, error) { return body.Sites, nil })
	if err != nil {
		a.fail(w, r, err)
		return
	}
	audited()
	writeJSON(w, http.StatusOK, summarise(t))
}

// createSite: POST /api/v1/sites — one site under an existing parent.
func (a *API) createSite(w http.ResponseWriter, r *http.Request, p *principal) {
	var s rooms.Site
	if err := decodeJSON(w, r, MaxBodyBytes, &s); err != nil {
		a.fail(w, r, err)
		return
	}
	if s.ID == "" {
		a.fail(w, r, invalid("site: id is required"))
		return
	}
	a.saveSite(w, r, p, "create_site", s, http.StatusCreated, func(sites []rooms.Site) ([]rooms.Site, error) {
		if slices.ContainsFunc(sites, func(x rooms.Site) bool { return x.ID == s.ID }) {
			return nil, newError(http.StatusConflict, httpapi.CodeExists, "site %q already exists", s.ID)
		}
		return append(sites, s), nil
	})
}

// updateSite: PUT /api/v1/sites/{id} — a site's name, level or parent (not its id).
func (a *API) updateSite(w http.ResponseWriter, r *http.Request, p *principal) {
	var s rooms.Site
	id, err := decodeUpdate(w, r, "site", &s, &s.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.saveSite(w, r, p, "update_site", s, http.StatusOK, func(sites []rooms.Site) ([]rooms.Site, error) {
		i := slices.IndexFunc(sites, func(x rooms.Site) bool { return x.ID == id })
		if i < 0 {
			return nil, newError(http.StatusNotFound, httpapi.CodeNotFound, "no site %q", id)
		}
		sites[i] = s
		return sites, nil
	})
}

// saveSite changes the tree by fn as p's action on site s, audited, and answers s's view
// with status.
func (a *API) saveSite(w http.ResponseWriter, r *http.Request, p *principal, action string, s rooms.Site, status int,
	fn func([]rooms.Site) ([]rooms.Site, error),
) {
	ctx, audited := a.auditWith(r, p, action, s.ID, fmt.Sprintf("%s (%s) under %q", s.Name, s.Level, s.Parent))
	t, err := a.changeTree(ctx, fn)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	audited()
	writeJSON(w, status, siteView(t, s))
}

// deleteSite: DELETE /api/v1/sites/{id} — a leaf no endpoint or coming meeting uses.
func (a *API) deleteSite(w http.ResponseWriter, r *http.Request, p *principal) {
	id := r.PathValue("id")
	ctx, audited := a.auditWith(r, p, "delete_site", id, "")
	_, err := a.changeTree(ctx, func(sites []rooms.Site) ([]rooms.Site, error) {
		i := slices.IndexFunc(sites, func(x rooms.Site) bool { return x.ID == id })
		if i < 0 {
			return nil, newError(http.StatusNotFound, httpapi.CodeNotFound, "no site %q", id)
		}
		var kids []string
		for _, x := range sites {
			if x.Parent == id {
				kids = append(kids, x.ID)
			}
		}
		if len(kids) > 0 {
			return nil, newError(http.StatusConflict, httpapi.CodeInUse, "site %q has %d child site(s) (%s): delete them first",
				id, len(kids), listSome(kids))
		}
		if len(sites) == 1 {
			return nil, newError(http.StatusConflict, httpapi.CodeInUse, "site %q is the only site: replace the tree instead", id)
		}
		return slices.Delete(sites, i, i+1), nil
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	audited()
	w.WriteHeader(http.StatusNoContent)
}

// changeTree applies fn to the saved sites, validates the result, checks that every
// endpoint and coming meeting still has its sites, saves it and installs it.
func (a *API) changeTree(ctx context.Context, fn func([]rooms.Site) ([]rooms.Site, error)) (*rooms.Tree, error) {
	a.treeMu.Lock()
	defer a.treeMu.Unlock()
	sites, err := a.store.Sites(ctx)
	if err != nil {
		return nil, fmt.Errorf("read sites: %w", err)
	}
	if len(sites) == 0 && a.Tree() != nil {
		sites = a.Tree().Sites() // a tree given at start and not saved (yet)
	}
	sites, err = fn(slices.Clone(sites))
	if err != nil {
		return nil, err
	}
	t, err := rooms.NewTree(sites)
	if err != nil {
		return nil, invalid("site tree: %v", err)
	}
	if err := a.checkReferences(ctx, t); err != nil {
		return nil, err
	}
	if err := a.store.SaveSites(ctx, sites); err != nil {
		return nil, fmt.Errorf("save sites: %w", err)
	}
	a.setTree(t)
	a.log.Info("site tree changed", "sites", t.Len(), "root", t.Root().ID)
	return t, nil
}

// checkReferences refuses a tree that lacks a site some endpoint or some meeting not yet
// over still uses.
func (a *API) checkReferences(ctx context.Context, t *rooms.Tree) error {
	eps, err := a.store.Endpoints(ctx)
	if err != nil {
		return fmt.Errorf("read endpoints: %w", err)
	}
	var problems []string
	for _, e := range eps {
		if !t.Has(e.Site) {
			problems = append(problems, fmt.Sprintf("endpoint %s is at site %s", e.ID, e.Site))
		}
	}
	ms, err := a.store.Meetings(ctx, a.now())
	if err != nil {
		return fmt.Errorf("read meetings: %w", err)
	}
	for _, m := range ms {
		if m.Over() {
			continue
		}
		for _, s := range m.Sites {
			if !t.Has(s) {
				problems = append(problems, fmt.Sprintf("meeting %s includes site %s", m.ID, s))
				break
			}
		}
	}
	if len(problems) > 0 {
		return newError(http.StatusConflict, httpapi.CodeInUse, "the new tree lacks sites still in use: %s", listSome(problems))
	}
	return nil
}

// listSome joins the first five items and says how many more there are.
func listSome(items []string) string {
	if len(items) <= 5 {
		return strings.Join(items, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(items[:5], "; "), len(items)-5)
}
