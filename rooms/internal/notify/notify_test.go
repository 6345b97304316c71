package notify_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cau-project/cau/rooms"
	"github.com/cau-project/cau/rooms/internal/notify"
)

func floorChange(id string, v uint64) rooms.Change {
	return rooms.Change{MeetingID: id, Kind: rooms.ChangeFloor, Floor: &rooms.FloorState{MeetingID: id, Version: v}}
}

func TestHub(t *testing.T) {
	h := notify.New()
	ctx, cancel := context.WithCancel(t.Context())
	a, err := h.Subscribe(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := h.Subscribe(t.Context(), "m1")
	other, _ := h.Subscribe(t.Context(), "m2")

	// A slow reader keeps the latest Buffer changes, in order.
	const n = notify.Buffer + 10
	for v := uint64(1); v <= n; v++ {
		h.Publish(floorChange("m1", v))
	}
	for want := uint64(n - notify.Buffer + 1); want <= n; want++ {
		if c := <-a; c.Floor.Version != want {
			t.Fatalf("got version %d, want %d", c.Floor.Version, want)
		}
	}
	select {
	case c := <-a:
		t.Fatalf("extra change %+v", c)
	default:
	}
	// Each watcher gets its own copy.
	c := <-b
	c.Floor.Version = 999
	if c2 := <-b; c2.Floor.Version == 999 {
		t.Error("watchers share values")
	}
	select {
	case c := <-other:
		t.Fatalf("m2 watcher got %+v", c)
	default:
	}
	// Ending the context closes the channel.
	cancel()
	select {
	case _, open := <-a:
		for open {
			_, open = <-a
		}
	case <-time.After(time.Second):
		t.Fatal("channel not closed after cancel")
	}
	h.Publish(floorChange("m1", 1)) // no panic on the closed watcher
	h.Close()
	for _, ch := range []<-chan rooms.Change{b, other} {
		for range ch { // drains, then ends because Close closed it
		}
	}
	if _, err := h.Subscribe(t.Context(), "m1"); !errors.Is(err, rooms.ErrClosed) {
		t.Errorf("Subscribe after Close: %v", err)
	}
	h.Close() // twice is fine
}
