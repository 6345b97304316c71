package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cau-project/cau/apiclient"
	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/rooms"
)

var meetingsCommands = []subcommand{
	{"list", "[--all] [--site ID]", "list meetings not yet ended (--all: every meeting)", runMeetingsList},
	{"show", "ID", "show one meeting and its sites", runMeetingsShow},
	{"schedule", "--title T --start TIME --duration D --select ROOT", "book a meeting (see -h for every flag)", runMeetingsSchedule},
	{"cancel", "ID", "call a meeting off (frees its rooms)", runMeetingsFinish("cancel")},
	{"end", "ID", "end a meeting now", runMeetingsFinish("end")},
	{"rollcall", "ID [--csv] [-o FILE]", "who joined, when, for how long, drops and link grade", runMeetingsRollCall},
}

func runMeetings(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return dispatch(ctx, "meetings", append(meetingsCommands, recordCommands...), args, stdout, stderr)
}

// describe is one line about m, in Vietnam time.
func describe(m apiclient.Meeting) string {
	end := m.End.In(rooms.Zone()).Format("15:04")
	if !sameDay(m.Start, m.End) {
		end = rooms.FormatLocal(m.End)
	}
	return fmt.Sprintf("%s %q: %d sites, %s – %s, chair %s, %s mode, sites connect from %s, %s",
		m.ID, m.Title, m.SiteCount, rooms.FormatLocal(m.Start), end, m.ChairSite, m.Mode,
		m.ConnectAt.In(rooms.Zone()).Format("15:04"), m.Status)
}

func sameDay(a, b time.Time) bool {
	a, b = a.In(rooms.Zone()), b.In(rooms.Zone())
	return a.YearDay() == b.YearDay() && a.Year() == b.Year()
}

func runMeetingsList(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	fs, af := newFlags(name, stderr)
	all := fs.Bool("all", false, "include meetings that have ended")
	site := fs.String("site", "", "only meetings that include this site")
	_, c, err := af.connect(fs, args, 0, "", stderr)
	if err != nil {
		return err
	}
	q := url.Values{}
	if *all {
		q.Set("all", "1")
	}
	if *site != "" {
		q.Set("site", *site)
	}
	meetings, err := c.Meetings(ctx, q)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tSTART (UTC+7)\tEND\tSITES\tCHAIR\tTITLE")
	for _, m := range meetings {
		end := m.End.In(rooms.Zone()).Format("15:04")
		if !sameDay(m.Start, m.End) {
			end = m.End.In(rooms.Zone()).Format("01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.ID, m.Status, m.Start.In(rooms.Zone()).Format("2006-01-02 15:04"),
			end, m.SiteCount, m.ChairSite, m.Title)
	}
	return tw.Flush()
}

func runMeetingsShow(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	fs, af := newFlags(name, stderr)
	pos, c, err := af.connect(fs, args, 1, "cau meetings show ID", stderr)
	if err != nil {
		return err
	}
	m, err := c.Meeting(ctx, pos[0])
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, describe(m))
	fmt.Fprintf(stdout, "sites: %s\n", strings.Join(m.Sites, " "))
	return nil
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// parseSelection reads ROOT or ROOT:LEVEL[,LEVEL…] ("gl:commune").
func parseSelection(s string, exclude []string) (rooms.Selection, error) {
	root, levels, _ := strings.Cut(s, ":")
	if root == "" {
		return rooms.Selection{}, fmt.Errorf("--select %q: want ROOT or ROOT:LEVEL[,LEVEL…]", s)
	}
	sel := rooms.Selection{Root: root, Exclude: exclude}
	for _, l := range strings.Split(levels, ",") {
		if l = strings.TrimSpace(l); l != "" {
			sel.Levels = append(sel.Levels, rooms.Level(l))
		}
	}
	return sel, nil
}

// parseWhen reads "now", RFC 3339 or a Vietnam wall-clock time ("2026-03-02 08:00").
func parseWhen(flagName, s string) (time.Time, error) {
	if s == "now" { // an ad hoc meeting booked as it starts, or a test
		return time.Now().Truncate(time.Second), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := rooms.ParseLocal(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s %q: want \"now\", \"2026-03-02 08:00\" (Vietnam time) or RFC 3339", flagName, s)
	}
	return t, nil
}

func runMeetingsSchedule(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	fs, af := newFlags(name, stderr)
	id := fs.String("id", "", "meeting id (default: generated)")
	title := fs.String("title", "", "title (required)")
	chair := fs.String("chair", "", "chair site (default: the first --select root, or the first --site)")
	start := fs.String("start", "", `start: now, "2026-03-02 08:00" in Vietnam time, or RFC 3339 (required)`)
	end := fs.String("end", "", "end (or --duration)")
	dur := fs.Duration("duration", 0, "length, e.g. 2h (instead of --end)")
	mode := fs.String("mode", "", "floor mode: discussion (default), training or directed")
	window := fs.Duration("test-window", 0, "how long before the start sites connect for tests (default 60m)")
	asJSON := fs.Bool("json", false, "print the API's answer as JSON")
	var sels, sites, exclude listFlag
	fs.Var(&sels, "select", "ROOT[:LEVEL,…]: ROOT and the sites below it (at those levels); repeatable")
	fs.Var(&sites, "site", "one more site; repeatable")
	fs.Var(&exclude, "exclude", "leave out this site and everything below it; repeatable")
	if _, err := parseInterleaved(fs, args); err != nil {
		return errUsage
	}
	switch {
	case *title == "" || *start == "":
		fmt.Fprintln(stderr, "cau meetings schedule: --title and --start are required")
		return errUsage
	case (*end == "") == (*dur == 0):
		fmt.Fprintln(stderr, "cau meetings schedule: give one of --end and --duration")
		return errUsage
	case len(sels) == 0 && len(sites) == 0:
		fmt.Fprintln(stderr, "cau meetings schedule: give --select or --site")
		return errUsage
	}
	from, err := parseWhen("start", *start)
	if err != nil {
		return err
	}
	to := from.Add(*dur)
	if *end != "" {
		if to, err = parseWhen("end", *end); err != nil {
			return err
		}
	}
	body := map[string]any{"title": *title, "start": from.Format(time.RFC3339), "end": to.Format(time.RFC3339)}
	var selections []rooms.Selection
	for _, s := range sels {
		sel, err := parseSelection(s, exclude)
		if err != nil {
			return err
		}
		selections = append(selections, sel)
	}
	if len(selections) > 0 {
		body["select"] = selections
	}
	if len(sites) > 0 {
		body["sites"] = []string(sites)
	}
	for k, v := range map[string]string{"id": *id, "chair_site": *chair, "mode": *mode} {
		if v != "" {
			body[k] = v
		}
	}
	if *window > 0 {
		body["test_window"] = window.String()
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	m, raw, err := c.Schedule(ctx, body)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err = stdout.Write(raw)
		return err
	}
	fmt.Fprintf(stdout, "scheduled %s\n", describe(m))
	return nil
}

// runMeetingsFinish is `cau meetings cancel` or `cau meetings end`.
func runMeetingsFinish(verb string) func(context.Context, string, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
		fs, af := newFlags(name, stderr)
		pos, c, err := af.connect(fs, args, 1, "cau meetings "+verb+" ID", stderr)
		if err != nil {
			return err
		}
		m, err := c.Finish(ctx, pos[0], verb)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %q: %s\n", m.ID, m.Title, m.State)
		return nil
	}
}

func runMeetingsRollCall(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	fs, af := newFlags(name, stderr)
	asCSV := fs.Bool("csv", false, "write CSV (one line per site) instead of a table")
	out := fs.String("o", "", "write to this file instead of standard output")
	pos, c, err := af.connect(fs, args, 1, "cau meetings rollcall ID [--csv] [-o FILE]", stderr)
	if err != nil {
		return err
	}
	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("roll call: %w", err)
		}
		defer f.Close()
		w = f
	}
	if *asCSV {
		raw, err := c.RollCallCSV(ctx, pos[0])
		if err != nil {
			return err
		}
		if _, err := w.Write(raw); err != nil {
			return fmt.Errorf("roll call: %w", err)
		}
		return closeOut(w, stdout)
	}
	rc, err := c.RollCall(ctx, pos[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s %q as of %s: %d of %d sites attended, %d online now\n\n", rc.Meeting.ID, rc.Meeting.Title,
		rooms.FormatLocal(rc.AsOf), rc.Summary.Attended, rc.Summary.Sites, rc.Summary.Online)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tJOINED\tCONNECTED\tDROPS\tWORST\tONLINE\tNAME")
	for _, r := range rc.Records {
		joined := "-"
		if r.FirstJoined != nil {
			joined = r.FirstJoined.In(rooms.Zone()).Format("15:04:05")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%v\t%s\n", r.Site, joined, time.Duration(r.ConnectedSeconds)*time.Second,
			r.Drops, r.WorstGrade, r.Online, r.Name)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return closeOut(w, stdout)
}

// closeOut reports a file written by -o.
func closeOut(w, stdout io.Writer) error {
	if f, ok := w.(*os.File); ok && w != stdout {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("roll call: %w", err)
		}
		fmt.Fprintf(stdout, "wrote %s\n", f.Name())
	}
	return nil
}

// ---- dev mode: the demo meeting and a kiosk ---------------------------------------------------

// demoMeeting is the meeting id of the dev links (printDemoLinks uses it too).
const demoMeeting = "demo"

// demoEndpoint is the dev room device: at the bottom of the demo chain.
func demoEndpoint(tree *rooms.Tree, chain []string) rooms.Endpoint {
	site := chain[len(chain)-1]
	return rooms.Endpoint{ID: "room-" + site, Name: "Phòng họp " + tree.Name(site), Site: site, Kind: rooms.KindRoom}
}

// seedDemo gives a dev server a room device and a meeting "demo" over the whole tree
// from now for 24 hours (kept if one is already running for a while yet), so the
// printed links, the kiosk's included, work at once.
func seedDemo(ctx context.Context, store rooms.Store, tree *rooms.Tree, chain []string, log *slog.Logger) error {
	ep := demoEndpoint(tree, chain)
	switch _, err := store.Endpoint(ctx, ep.ID); {
	case errors.Is(err, rooms.ErrNotFound):
		if err := store.PutEndpoint(ctx, ep); err != nil {
			return fmt.Errorf("demo endpoint: %w", err)
		}
	case err != nil:
		return fmt.Errorf("demo endpoint: %w", err)
	}
	now := time.Now().Truncate(time.Second)
	switch m, err := store.Meeting(ctx, demoMeeting); {
	case err == nil && !m.Over() && m.Start.Before(now) && m.End.After(now.Add(time.Hour)):
		return nil // still on
	case err == nil:
		if err := store.DeleteMeeting(ctx, demoMeeting); err != nil {
			return fmt.Errorf("demo meeting: %w", err)
		}
	case !errors.Is(err, rooms.ErrNotFound):
		return fmt.Errorf("demo meeting: %w", err)
	}
	m, err := rooms.NewScheduler(store, tree).Schedule(ctx, rooms.Meeting{ID: demoMeeting, Title: "Demo",
		ChairSite: tree.Root().ID, Sites: tree.Subtree(tree.Root().ID), Start: now, End: now.Add(rooms.MaxMeetingLength),
		Mode: rooms.ModeDiscussion})
	if err != nil {
		// Another meeting in this data directory holds a room: the links still work,
		// the kiosk shows that meeting instead.
		log.Warn("dev: demo meeting not scheduled", "err", err)
		return nil
	}
	actor := rooms.Actor{Name: "cau serve --dev", Role: rooms.RoleAdmin}
	return store.AppendAudit(ctx, rooms.NewAuditEntry(now, actor, "schedule", m.ID, "dev demo meeting"))
}

// kioskLink is the dev room device's kiosk page with a device token.
func kioskLink(a *app.App, tree *rooms.Tree, chain []string) (string, string, error) {
	ep := demoEndpoint(tree, chain)
	tok, err := a.Keys().Sign(auth.Claims{Use: auth.UseKiosk, Role: auth.RoleRoom, Endpoint: ep.ID, Site: ep.Site, Name: ep.Name}, 30*24*time.Hour)
	if err != nil {
		return "", "", fmt.Errorf("kiosk token: %w", err)
	}
	return ep.Name, a.URL() + "/room/" + url.PathEscape(ep.ID) + "?token=" + url.QueryEscape(tok), nil
}
