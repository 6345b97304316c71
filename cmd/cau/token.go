package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/bridge/control"
	"github.com/cau-project/cau/ids"
)

func runToken(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	meeting := fs.String("meeting", "", "meeting id")
	site := fs.String("site", "", "site id of the holder")
	name := fs.String("name", "", "display name")
	role := fs.String("role", string(auth.RoleParticipant), "admin, technician, chair, participant, room or bridge")
	endpoint := fs.String("endpoint", "", "endpoint id (room devices)")
	use := fs.String("use", "", "join, api, kiosk or bridge (default: join with --meeting; else api, kiosk for a room, bridge for a bridge)")
	subject := fs.String("subject", "", "who holds the token, as the audit log records it (default: role@site; for role bridge, the bridge id: bridge-<site>)")
	ttl := fs.Duration("ttl", 24*time.Hour, "validity")
	dev := fs.Bool("dev", false, "sign with the dev key (for `cau serve --dev`)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	keys := auth.Keys{}
	switch key := os.Getenv("CAU_TOKEN_KEY"); {
	case key != "":
		keys.Current = []byte(key)
	case *dev:
		keys.Current = []byte(auth.DevKey)
	default:
		return fmt.Errorf("set CAU_TOKEN_KEY to the server's signing key, or pass --dev for a dev server")
	}
	r := auth.Role(*role)
	if !r.Valid() {
		return fmt.Errorf("unknown role %q", *role)
	}
	u := auth.Use(*use)
	switch {
	case u != "":
	case r == auth.RoleBridge:
		u = auth.UseBridge
	case *meeting != "":
		u = auth.UseJoin
	case r == auth.RoleRoom:
		u = auth.UseKiosk
	case r == auth.RoleAdmin || r == auth.RoleTechnician:
		u = auth.UseAPI
	default:
		return fmt.Errorf("--meeting is required for role %s", r)
	}
	c := auth.Claims{Use: u, Meeting: *meeting, Site: *site, Name: *name, Role: r, Endpoint: *endpoint}
	c.Subject = *subject
	if r == auth.RoleBridge {
		// A bridge's credential registers one bridge (its subject) for one site, and does
		// nothing else (bridge/control checks both at registration).
		if *site == "" {
			return fmt.Errorf("--site is required for role bridge")
		}
		if c.Subject == "" {
			c.Subject = "bridge-" + *site // cau bridge's default --id
		}
		c = control.BridgeClaims(ids.SiteID(*site), ids.BridgeID(c.Subject))
	}
	tok, err := keys.Sign(c, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
