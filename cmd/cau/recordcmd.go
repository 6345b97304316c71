package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/cau-project/cau/rooms"
)

// The recording subcommands of `cau meetings` (docs/recording.md).
var recordCommands = []subcommand{
	{"record", "ID start|stop|status", "start or stop recording a live meeting (chair or admin), or say whether it is recorded", runMeetingsRecord},
	{"recordings", "ID", "the meeting's recordings and their files", runMeetingsRecordings},
	{"compose", "ID REC", "render a recording's composite video (composite.mp4) on the server", runMeetingsCompose},
	{"download", "ID REC FILE [-o PATH]", "download a file of a recording", runMeetingsDownload},
}

func runMeetingsRecord(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	fs, af := newFlags(name, stderr)
	pos, c, err := af.connect(fs, args, 2, "cau meetings record ID start|stop|status", stderr)
	if err != nil {
		return err
	}
	id, verb := pos[0], pos[1]
	switch verb {
	case "start", "stop":
		st, err := c.Record(ctx, id, verb)
		if err != nil {
			return err
		}
		if verb == "start" {
			fmt.Fprintf(stdout, "%s: recording %s since %s\n", id, st.ID, rooms.FormatLocal(st.Since))
		} else {
			fmt.Fprintf(stdout, "%s: stopped; recording %s is in the meeting's record (cau meetings recordings %s)\n", id, st.ID, id)
		}
		return nil
	case "status":
		st, err := c.RecordingStatus(ctx, id)
		if err != nil {
			return err
		}
		if st.Active {
			fmt.Fprintf(stdout, "%s: recording %s since %s, started by %s\n", id, st.ID, rooms.FormatLocal(st.Since), st.By)
		} else {
			fmt.Fprintf(stdout, "%s: not recording\n", id)
		}
		return nil
	}
	fmt.Fprintf(stderr, "cau meetings record: %q: want start, stop or status\n", verb)
	return errUsage
}

func runMeetingsRecordings(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	fs, af := newFlags(name, stderr)
	pos, c, err := af.connect(fs, args, 1, "cau meetings recordings ID", stderr)
	if err != nil {
		return err
	}
	recs, err := c.Recordings(ctx, pos[0])
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		fmt.Fprintf(stdout, "%s: no recordings\n", pos[0])
		return nil
	}
	for _, r := range recs {
		span := rooms.FormatLocal(r.Started)
		if !r.Stopped.IsZero() {
			span += " – " + r.Stopped.In(rooms.Zone()).Format("15:04:05")
		}
		fmt.Fprintf(stdout, "%s  %s  %s", r.ID, r.State, span)
		if r.Compose != "" {
			fmt.Fprintf(stdout, "  composite: %s %.0f%% %s", r.Compose, 100*r.ComposeProgress, r.ComposeError)
		}
		fmt.Fprintln(stdout)
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  FILE\tKIND\tSITE\tSTART\tLENGTH\tBYTES")
		for _, f := range r.Files {
			start, length := "", ""
			if f.Kind == "media" {
				start = (time.Duration(f.OffsetMs) * time.Millisecond).String()
				length = (time.Duration(f.DurationMs) * time.Millisecond).Round(100 * time.Millisecond).String()
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\n", f.Name, f.Kind, f.Site, start, length, f.Bytes)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func runMeetingsCompose(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	fs, af := newFlags(name, stderr)
	pos, c, err := af.connect(fs, args, 2, "cau meetings compose ID REC", stderr)
	if err != nil {
		return err
	}
	if err := c.Compose(ctx, pos[0], pos[1]); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s/%s: rendering composite.mp4; see cau meetings recordings %s\n", pos[0], pos[1], pos[0])
	return nil
}

func runMeetingsDownload(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	fs, af := newFlags(name, stderr)
	out := fs.String("o", "", "write to this path (default: FILE in the current directory)")
	pos, c, err := af.connect(fs, args, 3, "cau meetings download ID REC FILE [-o PATH]", stderr)
	if err != nil {
		return err
	}
	path := *out
	if path == "" {
		path = pos[2]
	}
	f, err := os.Create(path) //nolint:gosec // the user names the file to write
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	n, err := c.DownloadRecordingFile(ctx, pos[0], pos[1], pos[2], f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes)\n", path, n)
	return nil
}
