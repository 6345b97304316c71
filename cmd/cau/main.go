// Command cau is Cầu's single binary: `cau serve` runs signaling, a bridge and the web
// pages; `cau token` prints a signed join token. Run `cau help` for the list.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"serve", "run signaling, a bridge and the web pages (all-in-one)", runServe},
	{"signal", "run signaling and the web pages only; media goes through `cau bridge` processes", runSignal},
	{"bridge", "run a bridge for a site's subtree, registered with signaling", runBridge},
	{"token", "print a signed JWT for a join or API call", runToken},
	{"sites", "list, import or export the site tree (REST API client)", runSites},
	{"meetings", "list, schedule, cancel or end meetings; export roll calls (REST API client)", runMeetings},
	{"loadtest", "simulated endpoints against a Cầu server", runLoadtest},
	{"version", "print the version", runVersion},
}

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// errUsage marks a command-line mistake: exit code 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdout, stderr)
			switch {
			case err == nil:
				return 0
			case errors.Is(err, errUsage):
				return 2
			default:
				fmt.Fprintf(stderr, "cau %s: %v\n", c.name, err)
				return 1
			}
		}
	}
	fmt.Fprintf(stderr, "cau: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Cầu — video conferencing for a tree of sites\n\nUsage: cau <command> [flags]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `cau <command> -h` for a command's flags.")
}

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) error {
	fmt.Fprintln(stdout, "cau", version)
	return nil
}
