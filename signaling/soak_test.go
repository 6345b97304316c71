package signaling_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/cau-project/cau/auth"
	"github.com/cau-project/cau/client"
	"github.com/cau-project/cau/protocol"
)

// soakSize is the soak's endpoints and length: CAU_SOAK_ENDPOINTS and CAU_SOAK_DURATION
// (`make soak` runs 60 endpoints for 10 minutes), else a short run for make test.
func soakSize(t *testing.T) (int, time.Duration) {
	n, d := 8, 20*time.Second
	if v := os.Getenv("CAU_SOAK_ENDPOINTS"); v != "" {
		if _, err := fmt.Sscan(v, &n); err != nil {
			t.Fatalf("CAU_SOAK_ENDPOINTS=%q: %v", v, err)
		}
	}
	if v := os.Getenv("CAU_SOAK_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("CAU_SOAK_DURATION=%q: %v", v, err)
		}
	}
	return n, d
}

// resources are what a leak would grow.
type resources struct {
	goroutines, fds int
	heap            uint64
}

func measureResources() resources {
	runtime.GC()
	runtime.GC() // the second empties what sync.Pools kept through the first
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds := -1
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		fds = len(ents)
	}
	return resources{goroutines: runtime.NumGoroutine(), fds: fds, heap: ms.HeapInuse}
}

// TestSoak (issue 12, test strength) runs a province meeting for a while: a chair at
// central publishing, endpoints at the province's communes (on the province's bridge)
// joining and leaving all the time, the floor granted and revoked, and the province's
// bridge restarted half-way (its endpoints move to central and back is not required).
// Throughout, the endpoints in the meeting receive the chair; afterwards, with everyone
// gone, goroutines, open files and heap are back near where they were before the first
// join. make test runs it short; `make soak` runs 60 endpoints for 10 minutes.
func TestSoak(t *testing.T) {
	n, length := soakSize(t)
	c := startCascade(t, "prov")
	base := measureResources()
	ctx := context.Background()

	chair := c.joinAs(t, "soak", "central", "Chủ trì", auth.RoleChair)
	if err := chair.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := chair.FloorAction(ctx, protocol.FloorAction{Action: protocol.FloorSetMode, Mode: "training"}); err != nil {
		t.Fatal(err)
	}
	// Endpoints are closed by the test, not by t.Cleanup: a cleanup would keep every
	// endpoint that ever joined reachable, and the heap figure would count them.
	joined := 0
	join := func() *client.Client {
		joined++
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e, err := client.Dial(ctx, c.ws, c.token(t, "soak", fmt.Sprintf("pc-%03d", joined), fmt.Sprintf("Xã %d", joined)),
			client.Options{Loopback: true, Logger: logger()})
		if err != nil {
			t.Fatalf("join %d: %v", joined, err)
		}
		return e
	}
	eps := make([]*client.Client, 0, n)
	defer func() {
		for _, e := range eps {
			e.Close()
		}
	}()
	for range n {
		eps = append(eps, join())
	}
	allReceive := func(within time.Duration) {
		t.Helper()
		for _, e := range eps {
			eventually(t, within, func() string { return receivesFrom(e, chair, 10) })
		}
	}
	allReceive(60 * time.Second)

	start := time.Now()
	restarted, granted := false, ""
	for round := 0; time.Since(start) < length; round++ {
		// One endpoint leaves, a new one joins.
		i := round % len(eps)
		eps[i].Leave()
		eps[i].Close()
		eps[i] = join()
		// The floor goes to the newest commune, and is taken back the next round.
		action := protocol.FloorAction{Action: protocol.FloorGrant, Site: fmt.Sprintf("pc-%03d", joined), Mic: true, Camera: true}
		if round%2 == 1 {
			action = protocol.FloorAction{Action: protocol.FloorRevoke, Site: granted}
		}
		granted = action.Site
		if _, err := chair.FloorAction(ctx, action); err != nil {
			t.Fatalf("round %d: floor %s: %v", round, action.Action, err)
		}
		if !restarted && time.Since(start) > length/2 {
			restarted = true
			c.cancels["br-prov"]()
			eventually(t, 20*time.Second, func() string {
				if len(c.sig.Bridges()) != 1 {
					return "the province's bridge is still registered"
				}
				return ""
			})
			c.addBridge(t, "br-prov", "prov")
		}
		time.Sleep(time.Second)
	}
	if !restarted {
		t.Fatal("the soak ended before the bridge restart")
	}
	allReceive(60 * time.Second)
	t.Logf("SOAK: %d endpoints, %v, %d joins, a bridge restart", n, length, joined)

	for _, e := range eps {
		e.Close()
	}
	chair.Close()
	eventually(t, 30*time.Second, func() string {
		if p := c.sig.Participants("soak"); len(p) != 0 {
			return fmt.Sprintf("%d participants still in the meeting", len(p))
		}
		return ""
	})
	// The restarted bridge's engine is a new one (the old one is closed at the end of the
	// test): allow it its goroutines and sockets.
	var after resources
	eventually(t, 60*time.Second, func() string {
		after = measureResources()
		if after.goroutines > base.goroutines+40 || (base.fds >= 0 && after.fds > base.fds+20) {
			return fmt.Sprintf("goroutines %d (before %d), open files %d (before %d)",
				after.goroutines, base.goroutines, after.fds, base.fds)
		}
		return ""
	})
	t.Logf("SOAK: before: %d goroutines, %d files, heap %d MiB; after: %d, %d, %d MiB", base.goroutines, base.fds,
		base.heap>>20, after.goroutines, after.fds, after.heap>>20)
	if after.heap > base.heap+64<<20 {
		t.Errorf("heap grew from %d MiB to %d MiB", base.heap>>20, after.heap>>20)
	}
}
