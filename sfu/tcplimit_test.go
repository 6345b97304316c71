package sfu

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cau-project/cau/internal/testutil"
)

// TestIdleTCPConnsBounded (issue 12, finding 9, TCP): connections to the ICE-TCP port
// that never send STUN each held a socket and a goroutine for 30 s, from any number of
// them. Now one address holds at most MaxTCPConnsPerAddr: the ones over it are closed
// on accept and counted, and closing some makes room again. TestICETCP shows media still
// flows over ICE-TCP through the same caps.
func TestIdleTCPConnsBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{ICEUDPPort: 0, ICETCPPort: 0, IncludeLoopback: true, Logger: testLogger(), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	_, port, err := net.SplitHostPort(b.tcpAddr())
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", port)
	// closedByBridge reports, for each connection, whether the bridge closed it within a
	// second (an admitted one waits for its STUN message for longer).
	closedByBridge := func(conns []net.Conn) int {
		var closed atomic.Int64
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Go(func() {
				_ = c.SetReadDeadline(time.Now().Add(time.Second))
				_, err := c.Read(make([]byte, 1))
				if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || !errors.Is(err, os.ErrDeadlineExceeded) {
					closed.Add(1)
				}
			})
		}
		wg.Wait()
		return int(closed.Load())
	}
	dial := func(n int) []net.Conn {
		var out []net.Conn
		for range n {
			c, err := net.Dial("tcp4", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			out = append(out, c)
		}
		return out
	}
	const extra = 10
	conns := dial(MaxTCPConnsPerAddr + extra)
	if got := closedByBridge(conns); got != extra {
		t.Fatalf("the bridge closed %d of %d idle connections from one address, want the %d over %d",
			got, len(conns), extra, MaxTCPConnsPerAddr)
	}
	if got := testutil.Counter(t, reg, "cau_bridge_tcp_conns_refused_total"); got != extra {
		t.Fatalf("cau_bridge_tcp_conns_refused_total = %v, want %d", got, extra)
	}
	for _, c := range conns[:extra] {
		_ = c.Close()
	}
	// pion notices the closed ones when their read fails; then there is room again.
	testutil.Eventually(t, 10*time.Second, func() string {
		if closedByBridge(dial(1)) != 0 {
			return "no room for a new connection after some closed"
		}
		return ""
	})
}
