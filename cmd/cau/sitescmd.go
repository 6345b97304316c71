package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cau-project/cau/apiclient"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/config"
	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/rooms/store/bolt"
	"github.com/cau-project/cau/rooms/store/redis"
)

// ---- the REST client shared by `cau sites` and `cau meetings` ---------------------------

// apiFlags are the connection flags of the operator commands.
type apiFlags struct {
	url, token string
	dev        bool
}

func (f *apiFlags) register(fs *flag.FlagSet) {
	def := os.Getenv("CAU_URL")
	if def == "" {
		def = "http://127.0.0.1:7880"
	}
	fs.StringVar(&f.url, "url", def, "Cầu server (env CAU_URL)")
	fs.StringVar(&f.token, "token", "", "API token (default: env CAU_TOKEN, or an admin token signed with CAU_TOKEN_KEY)")
	fs.BoolVar(&f.dev, "dev", false, "sign an admin token with the dev key (for `cau serve --dev`)")
}

// newFlags makes the flag set of one verb with the connection flags.
func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *apiFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	af := &apiFlags{}
	af.register(fs)
	return fs, af
}

// connect parses a verb's flags and its npos positional arguments (usage is printed if
// they are wrong) and builds the REST client.
func (f *apiFlags) connect(fs *flag.FlagSet, args []string, npos int, usage string, stderr io.Writer) ([]string, *apiclient.Client, error) {
	pos, err := parseInterleaved(fs, args)
	if err != nil || len(pos) != npos {
		if usage != "" {
			fmt.Fprintln(stderr, "usage: "+usage)
		}
		return nil, nil, errUsage
	}
	c, err := f.client()
	return pos, c, err
}

// bearer is the API token: --token or CAU_TOKEN, else a short admin token signed with
// CAU_TOKEN_KEY (or the dev key with --dev).
func (f *apiFlags) bearer() (string, error) {
	tok := f.token
	if tok == "" {
		tok = os.Getenv("CAU_TOKEN")
	}
	if tok != "" {
		return tok, nil
	}
	keys := auth.Keys{}
	switch key := os.Getenv("CAU_TOKEN_KEY"); {
	case key != "":
		keys.Current = []byte(key)
	case f.dev:
		keys.Current = []byte(auth.DevKey)
	default:
		return "", errors.New("no credentials: pass --token, set CAU_TOKEN (or CAU_TOKEN_KEY to sign one), or --dev for a dev server")
	}
	// The subject is what the audit log records for this CLI's changes.
	sub := "cli"
	if u, err := user.Current(); err == nil && u.Username != "" {
		sub = "cli:" + u.Username
	}
	c := auth.Claims{Use: auth.UseAPI, Role: auth.RoleAdmin, Name: sub}
	c.Subject = sub
	return keys.Sign(c, 10*time.Minute)
}

// client builds the REST client with bearer's token.
func (f *apiFlags) client() (*apiclient.Client, error) {
	tok, err := f.bearer()
	if err != nil {
		return nil, err
	}
	return apiclient.New(f.url, tok, nil), nil
}

// parseInterleaved parses flags that may come before, between or after positional
// arguments (`cau meetings cancel m1 --url …`) and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

// subcommand is one verb of `cau sites` or `cau meetings`.
type subcommand struct {
	name, usage, summary string
	run                  func(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error
}

// dispatch runs the verb args[0] of a command group.
func dispatch(ctx context.Context, group string, subs []subcommand, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		w := stdout
		if len(args) == 0 {
			w = stderr
		}
		fmt.Fprintf(w, "Usage: cau %s <command> [flags]\n\nCommands:\n", group)
		for _, s := range subs {
			fmt.Fprintf(w, "  %-40s %s\n", s.name+" "+s.usage, s.summary)
		}
		fmt.Fprintf(w, "\nEvery command takes --url, --token and --dev; run `cau %s <command> -h` for its flags.\n", group)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(ctx, group+" "+s.name, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "cau %s: unknown command %q (try `cau %s help`)\n", group, args[0], group)
	return errUsage
}

// ---- cau sites ------------------------------------------------------------------------------

var sitesCommands = []subcommand{
	{"list", "[--tree]", "list the site tree (indented with --tree)", runSitesList},
	{"import", "FILE.yaml", "replace the site tree with a YAML file (id, name, level, parent)", runSitesImport},
	{"export", "[-o FILE]", "write the site tree as YAML", runSitesExport},
}

func runSites(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return dispatch(ctx, "sites", sitesCommands, args, stdout, stderr)
}

func runSitesList(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	fs, af := newFlags(name, stderr)
	indent := fs.Bool("tree", false, "indent each site under its parent")
	_, l, err := af.sites(ctx, fs, args, stderr)
	if err != nil {
		return err
	}
	for _, s := range l.Sites {
		if *indent {
			fmt.Fprintf(stdout, "%s%s  %s (%s)\n", strings.Repeat("  ", s.Depth), s.ID, s.Name, s.Level)
		} else {
			fmt.Fprintf(stdout, "%-16s %-9s %-16s %s\n", s.ID, s.Level, s.Parent, s.Name)
		}
	}
	fmt.Fprintf(stdout, "%d sites%s\n", l.Count, levelCounts(l.Levels))
	return nil
}

// sites parses args (flags only) and reads the site tree from the API, with the client.
func (f *apiFlags) sites(ctx context.Context, fs *flag.FlagSet, args []string, stderr io.Writer) (*apiclient.Client, apiclient.SiteList, error) {
	_, c, err := f.connect(fs, args, 0, "", stderr)
	if err != nil {
		return nil, apiclient.SiteList{}, err
	}
	l, err := c.Sites(ctx)
	return c, l, err
}

// levelCounts writes ": 1 province, 20 district, …" in level order.
func levelCounts(m map[string]int) string {
	var parts []string
	for _, l := range []rooms.Level{rooms.LevelCentral, rooms.LevelProvince, rooms.LevelDistrict, rooms.LevelCommune} {
		if n := m[string(l)]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, l))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, ", ")
}

func runSitesImport(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	fs, af := newFlags(name, stderr)
	pos, err := parseInterleaved(fs, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: cau sites import FILE.yaml")
		return errUsage
	}
	// Validate here first: the file's line numbers make better messages than the API can.
	tree, err := rooms.LoadTreeFile(pos[0])
	if err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	sites := make([]apiclient.Site, 0, tree.Len())
	for _, s := range tree.Sites() {
		sites = append(sites, apiclient.Site{ID: s.ID, Name: s.Name, Level: string(s.Level), Parent: s.Parent})
	}
	sum, err := c.ReplaceSites(ctx, sites)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %d sites under %s%s\n", sum.Count, sum.Root, levelCounts(sum.Levels))
	return nil
}

func runSitesExport(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	fs, af := newFlags(name, stderr)
	out := fs.String("o", "", "write to this file instead of standard output")
	c, l, err := af.sites(ctx, fs, args, stderr)
	if err != nil {
		return err
	}
	sites := make([]rooms.Site, len(l.Sites))
	for i, s := range l.Sites {
		sites[i] = rooms.Site{ID: s.ID, Name: s.Name, Level: rooms.Level(s.Level), Parent: s.Parent}
	}
	tree, err := rooms.NewTree(sites)
	if err != nil {
		return fmt.Errorf("export: the server's tree: %w", err)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Cầu site tree exported from %s on %s: %d sites.\n", c.Base(), rooms.FormatLocal(time.Now()), tree.Len())
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(tree); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if *out == "" {
		_, err = stdout.Write(buf.Bytes())
		return err
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %d sites to %s\n", tree.Len(), *out)
	return nil
}

// ---- the store of `cau serve` and `cau signal` ---------------------------------------------

// openStore opens the configured store (Redis if redis_url is set, else bbolt at
// <data_dir>/cau.db) and settles the site tree: the stored tree wins; an empty store is
// seeded with fileTree (the sites file, or the dev example). It returns the tree to run
// with (nil if there is none anywhere).
func openStore(ctx context.Context, cfg config.Config, fileTree *rooms.Tree, log *slog.Logger) (rooms.Store, *rooms.Tree, error) {
	var s rooms.Store
	if cfg.RedisURL != "" {
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		rs, err := redis.Open(octx, cfg.RedisURL, redis.DefaultPrefix)
		if err != nil {
			return nil, nil, fmt.Errorf("store: redis %s: %w", config.RedactURL(cfg.RedisURL), err)
		}
		s = rs
		log.Info("store: redis", "url", config.RedactURL(cfg.RedisURL), "prefix", redis.DefaultPrefix)
	} else {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("store: %w", err)
		}
		path := filepath.Join(cfg.DataDir, "cau.db")
		bs, err := bolt.Open(path)
		if err != nil {
			return nil, nil, fmt.Errorf("store: %w (is another cau process using it? give each its own data_dir, or share redis_url)", err)
		}
		s = bs
		log.Info("store: embedded", "path", path)
	}
	sites, err := s.Sites(ctx)
	if err != nil {
		_ = s.Close()
		return nil, nil, fmt.Errorf("store: read sites: %w", err)
	}
	if len(sites) == 0 {
		if fileTree != nil {
			if err := s.SaveSites(ctx, fileTree.Sites()); err != nil {
				_ = s.Close()
				return nil, nil, fmt.Errorf("store: save sites: %w", err)
			}
			log.Info("site tree saved to the store", "sites", fileTree.Len())
		}
		return s, fileTree, nil
	}
	stored, err := rooms.NewTree(sites)
	if err != nil {
		_ = s.Close()
		return nil, nil, fmt.Errorf("store: the stored site tree is invalid: %w", err)
	}
	if fileTree != nil && !slices.Equal(fileTree.Sites(), stored.Sites()) {
		log.Warn("the sites file differs from the stored site tree; the stored one is used (replace it with `cau sites import FILE`)",
			"file_sites", fileTree.Len(), "stored_sites", stored.Len())
	}
	return s, stored, nil
}
