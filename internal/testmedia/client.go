package testmedia

import (
	"context"
	"testing"
	"time"

	"github.com/cau-project/cau/client"
)

// DialPublishing joins the meeting at wsURL with token as a Go client (client.Dial with
// opts) that publishes its synthetic camera and microphone, closed when the test ends.
func DialPublishing(t testing.TB, wsURL, token string, opts client.Options) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, wsURL, token, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}
