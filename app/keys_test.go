package app_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cau-project/cau/app"
	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/internal/testutil"
	"github.com/cau-project/cau/protocol"
	"github.com/cau-project/cau/rooms"
)

// TestStartRefusesWeakKeys: outside --dev the public dev key, as the current key or a
// previous one, and a previous key shorter than auth.MinKeyBytes (an empty one would
// verify forged tokens) stop the server at start-up with a clear error.
func TestStartRefusesWeakKeys(t *testing.T) {
	strong := "app-test-strong-signing-key-0123456789"
	for _, c := range []struct {
		name     string
		key      string
		previous []string
		want     string
	}{
		{"dev key as current", auth.DevKey, nil, "dev key"},
		{"dev key as previous", strong, []string{auth.DevKey}, "dev key"},
		{"empty previous", strong, []string{""}, "previous token key"},
		{"short previous", strong, []string{"short"}, "previous token key"},
	} {
		a, err := app.Start(t.Context(), app.Config{HTTPAddr: "127.0.0.1:0", ICETCPPort: -1, TokenKey: c.key,
			PreviousTokenKeys: c.previous, Logger: slog.New(slog.DiscardHandler)})
		if err == nil {
			a.Close()
			t.Errorf("%s: started", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q, want it to mention %q", c.name, err, c.want)
		}
	}
}

// TestJoinNameAndAuditActor: the display name a client sends with its join does not
// replace the token's, and the audit log records who acted from the token (subject,
// role, site), never the client's free text.
func TestJoinNameAndAuditActor(t *testing.T) {
	ctx := context.Background()
	log := testutil.Logger()
	a, store, _ := startHop(t, rooms.ModeTraining)
	ws := wsURL(a)
	tok, err := a.Keys().Sign(auth.Claims{Meeting: "hop", Site: "xa", Name: "Xã Ia Grai", Role: auth.RoleParticipant,
		Use: auth.UseJoin, RegisteredClaims: jwt.RegisteredClaims{Subject: "site:xa"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, ws, tok, client.Options{Loopback: true, Logger: log, Name: "Chủ tịch nước"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Self.Name != "Xã Ia Grai" {
		t.Errorf("joined as %q, want the token's name", c.Self.Name)
	}
	if _, err := c.FloorAction(ctx, protocol.FloorAction{Action: protocol.FloorRequest}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries, err := store.Audit(ctx, rooms.AuditQuery{Target: "hop"})
		if err != nil {
			t.Fatal(err)
		}
		var got *rooms.AuditEntry
		for i := range entries {
			if entries[i].Action == "floor.request" {
				got = &entries[i]
			}
		}
		if got != nil {
			if got.Actor != "site:xa" || got.Role != rooms.RoleParticipant || got.Site != "xa" {
				t.Fatalf("audit entry %+v, want actor site:xa, role participant, site xa", *got)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no floor.request audit entry in %+v", entries)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
