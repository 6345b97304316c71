package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/cau-project/cau/config"
	"github.com/cau-project/cau/loadtest"
	"github.com/cau-project/cau/rooms"
)

const defaultTree = "deploy/examples/gia-lai.yaml"

func runLoadtest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	def := loadtest.DefaultConfig()
	flags := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprintln(stderr, "Usage: cau loadtest [flags]\n\nJoins simulated endpoints to a meeting on a Cầu server, measures, and exits 1 when a threshold is crossed.\n\nFlags:")
		flags.PrintDefaults()
	}
	// The tester asks the API for every join token, with an operator's token.
	var af apiFlags
	af.register(flags)
	meeting := flags.String("meeting", def.Meeting, "meeting id")
	endpoints := flags.Int("endpoints", def.Endpoints, "simulated endpoints")
	tree := flags.String("tree", defaultTree, "site tree YAML (id, name, level, parent); endpoints go one per site first; empty: synthetic sites")
	publishers := flags.Int("publishers", def.Publishers, "endpoints publishing at once; the first is the chair")
	media := flags.String("media", def.Media, "what publishers send: av, video or audio")
	videoKbps := flags.Int("video-kbps", def.VideoKbps, "video bitrate per publisher, kbit/s")
	fps := flags.Int("fps", def.FPS, "video frame rate")
	simulcast := flags.Bool("simulcast", false, "publish video in three layers (¼, ½ and full rate), as the join page does; the report counts the layers received")
	talkers := flags.Int("talkers", 0, "publishers (after the chair) that talk, in turns, one at a time; the others are silent. Publishers send audio levels and the report gets a Last-N section")
	slots := flags.Bool("slots", false, "endpoints receive in slots (a fixed set of tracks the bridge points at the Last-N sources) instead of one track per stream")
	talkEvery := flags.Duration("talk-every", def.TalkEvery, "length of a talker's turn")
	viewTiles := flags.Int("view-tiles", 0, "endpoints send a view: one large tile, view-tiles − 1 small ones, the other publishers hidden (0: no view)")
	videoN := flags.Int("video-n", def.VideoN, "the server's Last-N video tiles, which the Last-N section checks against")
	audioN := flags.Int("audio-n", def.AudioN, "the server's Last-N audio slots (besides the pinned), which the Last-N section checks against")
	maxLastNMiss := flags.Float64("max-lastn-miss", def.Thresholds.MaxLastNMissPct, "fail above this share of Last-N samples with a stream over- or under-delivered, percent (negative: no limit)")
	duration := flags.Duration("duration", def.Duration, "how long to hold and measure full load, after every join settled")
	ramp := flags.String("ramp", "20/s", "join rate, e.g. 20/s or 300/m")
	mode := flags.String("mode", def.Mode, "fixed, or rotate: sites take the floor in turn")
	rotateEvery := flags.Duration("rotate-every", def.RotateEvery, "floor period in rotate mode")
	joinTimeout := flags.Duration("join-timeout", def.JoinTimeout, "token → first media packet; slower is a failed join")
	jsonPath := flags.String("json", "", "write the JSON report here (- for stdout)")
	maxLoss := flags.Float64("max-loss", def.Thresholds.MaxLossPct, "fail above this packet loss, percent (negative: no limit)")
	maxFailed := flags.Int("max-failed-joins", def.Thresholds.MaxFailedJoins, "fail above this many failed or dropped endpoints (negative: no limit)")
	maxJoinP95 := flags.Duration("max-join-p95", def.Thresholds.MaxJoinP95, "fail above this join-time p95 (0: no limit)")
	logLevel := flags.String("log-level", "warn", "debug, info, warn or error (logs go to stderr)")
	cpuProfile := flags.String("cpu-profile", "", "write the tester's own CPU profile over the whole run here (go tool pprof): what the tester, not the server, spends")
	if err := flags.Parse(args); err != nil {
		return errUsage
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "cau loadtest: unexpected argument %q\n", flags.Arg(0))
		return errUsage
	}
	level, err := config.ParseLevel(*logLevel)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg := def
	cfg.URL, cfg.Meeting, cfg.Endpoints, cfg.Publishers = af.url, *meeting, *endpoints, *publishers
	cfg.Media, cfg.VideoKbps, cfg.FPS, cfg.Duration = *media, *videoKbps, *fps, *duration
	cfg.Simulcast = *simulcast
	cfg.Talkers, cfg.TalkEvery, cfg.ViewTiles, cfg.VideoN, cfg.AudioN = *talkers, *talkEvery, *viewTiles, *videoN, *audioN
	cfg.Slots = *slots
	cfg.Mode, cfg.RotateEvery, cfg.JoinTimeout, cfg.Logger = *mode, *rotateEvery, *joinTimeout, log
	cfg.Thresholds = loadtest.Thresholds{MaxLossPct: *maxLoss, MaxFailedJoins: *maxFailed, MaxJoinP95: *maxJoinP95,
		MaxLastNMissPct: *maxLastNMiss}
	if cfg.Ramp, err = loadtest.ParseRate(*ramp); err != nil {
		return err
	}
	if cfg.Token, err = af.bearer(); err != nil {
		return err
	}
	if *tree != "" {
		cfg.Sites, err = loadtestSites(*tree)
		treeGiven := false
		flags.Visit(func(f *flag.Flag) { treeGiven = treeGiven || f.Name == "tree" })
		if errors.Is(err, fs.ErrNotExist) && !treeGiven {
			log.Warn("default site tree not found; using synthetic sites", "tree", *tree)
			err = nil
		}
		if err != nil {
			return err
		}
	}

	progress := stdout
	if *jsonPath == "-" {
		progress = stderr
	}
	cfg.Progress = progress
	cfg.Live = isTerminal(progress)

	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	rep, runErr := loadtest.Run(ctx, cfg)
	if rep == nil {
		return runErr
	}
	summary := stdout
	if *jsonPath == "-" {
		summary = stderr
	}
	rep.WriteText(summary)
	if *jsonPath != "" {
		if err := rep.WriteJSON(*jsonPath, stdout); err != nil {
			return err
		}
	}
	if runErr != nil {
		return runErr
	}
	if !rep.Pass {
		return fmt.Errorf("thresholds crossed: %s", strings.Join(rep.Violations, "; "))
	}
	return nil
}

// startCPUProfile profiles this process's CPU into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

// isTerminal reports whether w is a character device (a terminal), without a dependency.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// loadtestSites reads and validates a site tree file (see rooms.LoadTreeFile) and returns
// its sites parents first (preorder), so the root, the chair's site, comes first.
func loadtestSites(path string) ([]loadtest.Site, error) {
	t, err := rooms.LoadTreeFile(path)
	if err != nil {
		return nil, fmt.Errorf("load sites: %w", err)
	}
	out := make([]loadtest.Site, 0, t.Len())
	for _, s := range t.Sites() {
		out = append(out, loadtest.Site{ID: s.ID, Name: s.Name, Level: string(s.Level), Parent: s.Parent})
	}
	return out, nil
}
